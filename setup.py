import os

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

NATIVE = os.path.join("umlpy", "_native")
# Programs of the package that are no Python extension: built with the
# extensions, beside them (in place for an editable install).
# umlpy-exec (exec_client.c): `umlpy exec` without Python's start-up.
PROGRAMS = {"umlpy-init": ("init.c", ["-static"]),
            "umlpy-exec": ("exec_client.c", [])}


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


setup(
    name="umlpy",
    version="0.1.0",
    description="A User-Mode-Linux style sandbox with a guest kernel in Python",
    packages=find_packages(include=["umlpy", "umlpy.*"]),
    package_data={"umlpy._native": ["*.c", "*.h", "umlpy-init", "umlpy-exec"]},
    python_requires=">=3.9",
    setup_requires=["cffi>=1.15"],
    cffi_modules=["umlpy/_native/build_tracer.py:ffibuilder"],
    cmdclass={"build_ext": build_ext_and_programs},
    install_requires=["cffi>=1.15", "python-ptrace>=0.9.8"],
    extras_require={"test": ["pytest>=7", "hypothesis>=6"]},
    entry_points={"console_scripts": ["umlpy=umlpy.cli:entry"]},
)
