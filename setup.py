from setuptools import find_packages, setup

setup(
    name="stica_ext",
    version="0.1.0",
    description="GDT and STiCA self-supervised multi-modal video learning, PySlowFast style",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(exclude=("tests", "tests.*", "tools", "configs")),
    install_requires=[
        "torch>=2.1",
        "fvcore",
        "iopath",
        "av",
        "simplejson",
        "pandas",
        "numpy",
        "pyyaml",
    ],
    extras_require={"test": ["pytest", "python_speech_features"]},
)
