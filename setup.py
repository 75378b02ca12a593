import os

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext
from distutils.command.build_scripts import build_scripts

NATIVE = os.path.join("umlpy", "_native")
# Programs of the package that are no Python extension: built with the
# extensions, beside them (in place for an editable install).
# umlpy-exec (exec_client.c): `umlpy exec` without Python's start-up.
PROGRAMS = {"umlpy-init": ("init.c", ["-static"]),
            "umlpy-exec": ("exec_client.c", [])}
# The umlpy command itself (front.c): a warm run without Python's start-up,
# else umlpy-cli, the Python command line beside it.  Installed as a script.
FRONT = os.path.join("build", "front", "umlpy")


class build_ext_and_programs(build_ext):
    def run(self):
        super().run()
        out_dir = NATIVE if self.inplace else os.path.join(self.build_lib, NATIVE)
        os.makedirs(out_dir, exist_ok=True)
        for name, (source, link_args) in PROGRAMS.items():
            objects = self.compiler.compile([os.path.join(NATIVE, source)],
                                            output_dir=self.build_temp,
                                            extra_postargs=["-O2", "-Wall"])
            self.compiler.link_executable(objects, name, output_dir=out_dir,
                                          extra_postargs=link_args)
        objects = self.compiler.compile([os.path.join(NATIVE, "front.c")],
                                        output_dir=self.build_temp,
                                        extra_postargs=["-O2", "-Wall"])
        self.compiler.link_executable(objects, os.path.basename(FRONT),
                                      output_dir=os.path.dirname(FRONT))


class build_binary_scripts(build_scripts):
    """The front end is a program, not a script: copied as it is
    (build_scripts would read it for a "#!python" line and a coding)."""

    def copy_scripts(self):
        self.mkpath(self.build_dir)
        outfiles = []
        for script in self.scripts:
            out = os.path.join(self.build_dir, os.path.basename(script))
            self.copy_file(script, out)
            os.chmod(out, 0o755)
            outfiles.append(out)
        return outfiles, outfiles


setup(
    name="umlpy",
    version="0.1.0",
    description="A User-Mode-Linux style sandbox with a guest kernel in Python",
    packages=find_packages(include=["umlpy", "umlpy.*"]),
    package_data={"umlpy._native": ["*.c", "*.h", "umlpy-init", "umlpy-exec"]},
    python_requires=">=3.9",
    setup_requires=["cffi>=1.15"],
    cffi_modules=["umlpy/_native/build_tracer.py:ffibuilder"],
    cmdclass={"build_ext": build_ext_and_programs, "build_scripts": build_binary_scripts},
    install_requires=["cffi>=1.15", "python-ptrace>=0.9.8"],
    extras_require={"test": ["pytest>=7", "hypothesis>=6"]},
    scripts=[FRONT],
    entry_points={"console_scripts": ["umlpy-cli=umlpy.cli:entry",
                                      "umlpy-oci=umlpy.oci.cli:main"]},
)
