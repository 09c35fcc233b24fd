"""Install spyolo: `pip install -e .` (add `[dev]` for the test tools)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).resolve().parent
version = {}
for line in (here / "spyolo" / "__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        version["v"] = line.split("=", 1)[1].strip().strip('"')

setup(
    name="spyolo",
    version=version["v"],
    description="Spiking object detection: SPYv4 (spiking YOLOv4-tiny) with LTC neurons, trained online with FPTT",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["spyolo", "spyolo.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "albumentations>=2.0",
        "pycocotools>=2.0.7",
        "numpy>=1.24",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "tensorboard>=2.12",
        # The one OpenCV distribution: albumentations already depends on the headless build,
        # and spyolo needs no GUI windows (demo output goes to files), so we name the same one.
        "opencv-python-headless>=4.8",
        "pillow>=9.0",
    ],
    extras_require={
        "dev": ["pytest>=7.4", "scikit-image>=0.21"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
