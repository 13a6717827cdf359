"""The environment spec: load a YAML file into an `EnvironmentSpec`, or report every problem.

from drbootstrap.spec import load_spec
spec = load_spec(Path("examples/local.yaml"))        # raises SpecError listing all problems
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from drbootstrap.errors import SpecError
from drbootstrap.spec.models import (
    CheckSpec,
    EnvironmentSpec,
    MasterSpec,
    NodeGroup,
    ProviderSpec,
    SiteSpec,
)
from drbootstrap.spec.positions import SourceMap, load_with_positions
from drbootstrap.spec.problems import Problem, from_validation_error
from drbootstrap.spec.secrets import SecretRef, SecretResolutionError
from drbootstrap.spec.semantic import check_semantics

__all__ = [
    "CheckSpec",
    "EnvironmentSpec",
    "MasterSpec",
    "NodeGroup",
    "ProviderSpec",
    "SecretRef",
    "SecretResolutionError",
    "SiteSpec",
    "load_spec",
    "parse_spec",
]


def load_spec(path: Path, *, resolve_secrets: bool = True) -> EnvironmentSpec:
    """Read and check the spec at `path`.

    Raises SpecError whose `problems` are every problem found, sorted by position, each one line
    `FILE:LINE:COL: what (how to fix)` where FILE is `path` as given. With resolve_secrets, every
    `${env:...}`/`${file:...}` reference is read now (a missing one is a problem); the values stay
    inside their SecretRef. Contacts nothing.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise SpecError(
            [f"{path}:1:1: cannot read the spec: {reason} (check the path and its permissions)"]
        ) from None
    spec = parse_spec(
        text, filename=str(path), base_dir=path.resolve().parent, resolve_secrets=resolve_secrets
    )
    spec._source_path = path
    return spec


def parse_spec(
    text: str, *, filename: str = "<spec>", base_dir: Path | None = None, resolve_secrets: bool = True
) -> EnvironmentSpec:
    """Like load_spec, for text already in memory; `${file:...}` paths are relative to base_dir."""
    document = load_with_positions(text)
    problems = [Problem((), e.message, e.hint, position=e.position) for e in document.errors]
    data = document.data
    if data is None and not problems:
        problems.append(Problem((), "the spec is empty", "start from examples/local.yaml", position=(1, 1)))
    elif data is not None and not isinstance(data, dict):
        problems.append(
            Problem((), "the spec must be a mapping of key: value", "start from examples/local.yaml")
        )
    spec = None
    if isinstance(data, dict):
        try:
            spec = EnvironmentSpec.model_validate(data, context={"base_dir": base_dir})
        except ValidationError as error:
            problems += from_validation_error(error, EnvironmentSpec, data)
        problems += check_semantics(data, base_dir, resolve_secrets)
    if problems or spec is None:
        raise SpecError(render_problems(problems, filename, document.source))
    if resolve_secrets:
        for _, reference in spec.secret_refs():
            reference.resolve()  # checked above; keeps the value inside the SecretRef
    return spec


def render_problems(problems: list[Problem], filename: str, source: SourceMap) -> list[str]:
    """Located one-line messages, sorted by position, duplicates dropped."""
    located = sorted({(p.locate(source), p.render(filename, source)) for p in problems})
    return [line for _, line in located]
