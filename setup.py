"""Packaging for mmcurate: curation of interleaved image-text data on PySpark + Delta Lake."""
from setuptools import find_packages, setup

CONNECT = ["grpcio>=1.76.0", "grpcio-status>=1.76.0", "googleapis-common-protos>=1.71.0", "zstandard>=0.25.0"]
"""What a Spark Connect client needs beyond pyspark (pyspark 4.2's own `connect` extra)."""

setup(
    name="mmcurate",
    version="0.1.0",
    description="Curate interleaved image-text training data with PySpark and Delta Lake",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    package_data={"mmcurate": ["recipes/*.yaml", "mixes/*.yaml", "pipelines/*.yaml", "resources/*", "demo_data/**/*"]},
    python_requires=">=3.10",
    install_requires=[
        "pyspark==4.2.0",
        "delta-spark==4.4.1",
        "deltalake>=1.1",
        "pyarrow>=15",
        "pandas<3",
        "numpy",
        "pyyaml",
        "pillow",
        "pypdfium2",
        "torch==2.14.1",
        "torchvision==0.29.1",
        "open_clip_torch",
        "transformers",
        "mlflow",
        "webdataset",
        "opencv-python-headless",
        "fsspec",
        "py3langid",
        "safetensors",
        "scipy",
        "tokenizers",
        "spacy",
        "matplotlib",
        "fastwarc",
        "trafilatura",
        "lxml_html_clean",
    ],
    extras_require={
        "fasttext": ["fasttext-community"],
        "connect": CONNECT,
        "test": ["pytest", "chispa", "segno", "datasketch", "fasttext-community", "datatrove", *CONNECT],
    },
    entry_points={"console_scripts": ["mmcurate=mmcurate.cli:main"]},
)
