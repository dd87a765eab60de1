"""Maps the design card's top-level folders onto the ``hipstride.*`` import names.

``edge/`` installs as ``hipstride.edge``, ``pipeline/`` as ``hipstride.pipeline`` and
``dashboard/`` as ``hipstride.dashboard``; ``hipstride/`` holds the shared contract and CLI.
Everything else about the package is in ``pyproject.toml``.
"""

from setuptools import find_packages, setup

COMPONENTS = {"hipstride": "hipstride", "edge": "hipstride.edge",
              "pipeline": "hipstride.pipeline", "dashboard": "hipstride.dashboard"}

packages, package_dir = [], {}
for folder, name in COMPONENTS.items():
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(where=folder)]

setup(packages=packages, package_dir=package_dir)
