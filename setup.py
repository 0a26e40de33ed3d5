from setuptools import find_packages, setup

setup(
    name="tasktypes",
    version="0.1.0",
    description="Long-running task-type methods for spyne SOAP and JSON-RPC services",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tasktypes", "tasktypes.*", "service", "service.*"]),
    python_requires=">=3.10",
    install_requires=[
        "spyne==2.14.0",
        "lxml>=4.9",
        "redis>=4.5",
        "multiprocessing-logging>=0.3.4",
        "cheroot>=10",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "zeep>=4.2",
            "requests>=2.28",
            "jsonrpcclient>=4",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Application",
    ],
)
