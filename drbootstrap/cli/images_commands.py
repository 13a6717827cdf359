"""`drbootstrap images build`: make the master and worker images (drbootstrap.images.build)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("images")
def images() -> None:
    """Build the master and worker images (qcow2, kernel, initrd) from Debian packages.

    \b
    Examples:
      sudo drbootstrap images build worker
      sudo drbootstrap images build --json
    """


@images.command("build")
@click.argument("names", nargs=-1, type=click.Choice(["master", "worker"]))
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where images are kept by digest (default: $DRB_IMAGE_CACHE, /var/cache/drbootstrap/images).")
@click.option("--apt-sources", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="deb822 sources to install from (default: $DRB_IMAGE_APT_SOURCES, this host's Debian sources).")
@click.option("--force", is_flag=True, help="Build again even when the cache holds an image of the same inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print each image's paths and digest as JSON.")
def build(names: tuple[str, ...], cache_dir: Path | None, apt_sources: Path | None, force: bool,
          as_json: bool) -> None:
    """Build NAMES (default: worker then master), or reuse the cached image of the same inputs.

    \b
    Examples:
      sudo drbootstrap images build worker
      sudo drbootstrap images build master --apt-sources ./snapshot.sources
    """
    from drbootstrap.images.build import build_image, describe

    built = [build_image(name, cache_dir=cache_dir, sources_file=apt_sources, force=force)
             for name in (names or ("worker", "master"))]
    if as_json:
        from drbootstrap.cli.output import echo_json

        echo_json({"images": [describe(image) for image in built]})
        return
    for image in built:
        how = "reused from the cache" if image.reused else "built"
        click.echo(f"{image.name}: {how} in {image.seconds} s: {image.disk} (kernel {image.kernel.name}, "
                   f"initrd {image.initrd.name}, manifest {image.manifest})")
