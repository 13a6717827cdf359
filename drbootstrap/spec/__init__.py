"""The environment spec: load a YAML file into an `EnvironmentSpec`, or report every problem.

from drbootstrap.spec import load_spec
spec = load_spec(Path("examples/local.yaml"))        # raises SpecError listing all problems
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from drbootstrap.errors import SpecError
from drbootstrap.spec.broker_nodes import with_broker_nodes
from drbootstrap.spec.limits import MAX_PROBLEMS, read_spec_text
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

    Raises SpecError whose `problems` are every problem found (the first MAX_PROBLEMS, then a line
    counting the rest), sorted by position, each one line `FILE:LINE:COL: what (how to fix)`
    where FILE is `path` as given. A file past a bound (drbootstrap.spec.limits) is one line. With
    resolve_secrets, every `${env:...}`/`${file:...}` reference is read now (a missing one is a
    problem); the values stay inside their SecretRef. Contacts nothing.
    """
    path = Path(path)
    text = read_spec_text(path)  # bounded: a regular file, MAX_SPEC_BYTES, UTF-8
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
    spec = with_broker_nodes(spec)
    if resolve_secrets:
        for _, reference in spec.secret_refs():
            reference.resolve()  # checked above; keeps the value inside the SecretRef
    return spec


def render_problems(problems: list[Problem], filename: str, source: SourceMap) -> list[str]:
    """Located one-line messages, sorted by position, duplicates dropped.

    Where YAML itself could not read a value, that one line stands for it: what the models then
    say about the same value (it is not a number, ...) would only repeat it.
    """
    unreadable = {p.position for p in problems if p.position is not None}
    located = sorted(
        {
            (p.locate(source), p.render(filename, source))
            for p in problems
            if p.position is not None or p.locate(source) not in unreadable
        }
    )
    lines = [line for _, line in located[:MAX_PROBLEMS]]
    if len(located) > MAX_PROBLEMS:
        (line, column), _ = located[MAX_PROBLEMS]
        lines.append(
            f"{filename}:{line}:{column}: {len(located) - MAX_PROBLEMS} more problems from here on "
            "(fix the ones above and run again)"
        )
    return lines
