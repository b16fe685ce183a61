"""Packaging for ptycho_ddip.

torch is deliberately *not* pinned here: install the build that fits your machine first
(``pip install torch==2.13.0`` on the project's CPU machines, a CUDA wheel on GPU nodes).
"""
from setuptools import find_packages, setup

setup(
    name="ptycho_ddip",
    version="0.1.0",
    description="Multislice ptychography and double-deep-image-prior crosstalk separation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ptycho_ddip", "ptycho_ddip.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "numpy>=1.22",
        "scipy>=1.8",
        "h5py>=3.6",
        "tqdm>=4.60",
        "tifffile>=2022.5",
        "matplotlib>=3.5",
    ],
    extras_require={
        "mpi": ["mpi4py>=3.1"],
        "dev": ["pytest>=7", "pytest-timeout>=2"],
    },
    entry_points={"console_scripts": ["ptycho-ddip=ptycho_ddip.cli:main"]},
)
