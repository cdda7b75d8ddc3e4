"""Packaging: the three top folders become one import namespace, and every family folder ships.

`course/` is `course`, `kernels/` is `course.kernels` and `widgets/` is `course.widgets`; every
package below them is found here, so a new family folder ships without an edit (the rest of the
metadata is in pyproject.toml).
"""
from setuptools import find_packages, setup

FOLDERS = {"course": "course", "course.kernels": "kernels", "course.widgets": "widgets"}
DATA = ["*.md", "catalog/*.md", "*.cu", "*.cuh", "*.cpp", "*.h"]

packages = [name for prefix, folder in FOLDERS.items()
            for name in (prefix, *(f"{prefix}.{p}" for p in find_packages(folder)))]
setup(packages=packages, package_dir=FOLDERS, package_data={name: DATA for name in packages},
      include_package_data=False)
