"""A model's environment files, as MLflow writes them.

``requirements.txt``, ``conda.yaml`` and ``python_env.yaml``, so MLflow-format model servers
can rebuild the environment.
"""

from __future__ import annotations

from pathlib import Path

from nbtrack._version import __version__

REQUIREMENTS = "requirements.txt"
CONDA = "conda.yaml"
PYTHON_ENV = "python_env.yaml"
#: the ``env`` entry of the ``python_function`` flavor, naming both files
ENV = {"conda": CONDA, "virtualenv": PYTHON_ENV}


def own_requirement(requirements: list[str]) -> list[str]:
    """``nbtrack==<version>``, unless listed: the flavors' loader modules are nbtrack's."""
    names = {r.split("==")[0].split(">")[0].split("<")[0].strip().lower() for r in requirements}
    return [] if "nbtrack" in names else [f"nbtrack=={__version__}"]


def write(folder: Path, requirements: list[str], python_version: str) -> None:
    """Write the three files for these pinned requirements and this Python version."""
    import yaml

    (folder / REQUIREMENTS).write_text("".join(f"{r}\n" for r in requirements))
    conda = {"name": "nbtrack-env", "channels": ["conda-forge"],
             "dependencies": [f"python={python_version}", "pip", {"pip": list(requirements)}]}
    (folder / CONDA).write_text(yaml.safe_dump(conda, default_flow_style=False, sort_keys=False))
    python_env = {"python": python_version, "build_dependencies": ["pip"],
                  "dependencies": [f"-r {REQUIREMENTS}"]}
    (folder / PYTHON_ENV).write_text(yaml.safe_dump(python_env, default_flow_style=False,
                                                    sort_keys=False))
