from setuptools import find_packages, setup

setup(
    name="umlpy",
    version="0.1.0",
    description="A User-Mode-Linux style sandbox with a guest kernel in Python",
    packages=find_packages(include=["umlpy", "umlpy.*"]),
    package_data={"umlpy._native": ["*.c", "*.h"]},
    python_requires=">=3.9",
    setup_requires=["cffi>=1.15"],
    cffi_modules=["umlpy/_native/build_tracer.py:ffibuilder"],
    install_requires=["cffi>=1.15", "python-ptrace>=0.9.8"],
    extras_require={"test": ["pytest>=7", "hypothesis>=6"]},
    entry_points={"console_scripts": ["umlpy=umlpy.cli:entry"]},
)
