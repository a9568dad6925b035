"""`mint-distill adapters list | show | verify | import` and `mint-distill adapt`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

PATH_OPTION = click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Also look in this folder (or at this bundle); repeatable. "
    "Always searched: ./adapters and $MINT_DISTILL_ADAPTERS.",
)


@click.group()
def adapters() -> None:
    """Domain adapter bundles: small LoRA adapters with a manifest and a model card."""


@adapters.command("list")
@PATH_OPTION
def adapters_list(paths: tuple[Path, ...]) -> None:
    """List the installed bundles.

    \b
    Examples:
      mint-distill adapters list
      mint-distill adapters list --path runs/pointrec/package
    """
    from rich.table import Table

    from ..console import console, stdout
    from .installed import discover_bundles

    bundles, problems = discover_bundles(list(paths))
    table = Table("domain", "path", "components", "base model", "NDCG@5", "size", "created")
    for bundle in bundles:
        table.add_row(
            bundle.domain,
            str(bundle.path),
            ", ".join(bundle.components),
            bundle.base_model,
            _student_ndcg(bundle.manifest),
            f"{bundle.size_bytes / 1e6:.1f} MB",
            str(bundle.manifest.get("created", "")),
        )
    stdout.print(table)
    for problem in problems:
        console.print(f"[yellow]skipped[/] {escape(problem)}", highlight=False)


def _student_ndcg(manifest: dict) -> str:
    means = (manifest.get("evaluation") or {}).get("means") or {}
    value = (means.get("biencoder-mint") or {}).get("NDCG@5")
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


@adapters.command("show")
@click.argument("bundle")
@PATH_OPTION
def adapters_show(bundle: str, paths: tuple[Path, ...]) -> None:
    """Show a bundle's manifest: base models and their hashes, LoRA settings, counts, figures.

    BUNDLE is a bundle folder or the domain of an installed bundle.

    \b
    Examples:
      mint-distill adapters show poi
      mint-distill adapters show runs/pointrec/package/poi
    """
    from ..console import stdout
    from .installed import find_bundle

    info = find_bundle(bundle, list(paths))
    manifest = info.manifest
    stdout.print(
        f"[bold]{info.domain}[/]  {escape(str(info.path))}  (format {manifest['format_version']}, "
        f"created {manifest.get('created')})"
    )
    if manifest.get("description"):
        stdout.print(manifest["description"], highlight=False, markup=False)
    for name, entry in manifest["components"].items():
        base, lora = entry["base_model"], entry["lora"]
        stdout.print(
            f"  {name}: LoRA r={lora['r']} alpha={lora['alpha']} on {lora['target_modules']}, "
            f"{entry['adapter_bytes'] / 1e6:.1f} MB",
            highlight=False,
        )
        stdout.print(
            f"    base {base['reference']} ({base.get('hub_id') or 'local'}) sha256 {base['weights_sha256']}",
            highlight=False,
        )
    if manifest.get("recipe"):
        stdout.print(f"  recipe {manifest['recipe']['name']} sha256 {manifest['recipe']['sha256']}", highlight=False)
    for stage, summary in (manifest.get("training_data") or {}).items():
        counts = ", ".join(f"{k} {v}" for k, v in summary.items() if isinstance(v, (int, float, str)))
        stdout.print(f"  {stage}: {counts}", highlight=False)
    for system, values in ((manifest.get("evaluation") or {}).get("means") or {}).items():
        stdout.print(f"  {system}: " + ", ".join(f"{m} {v:.4f}" for m, v in values.items()), highlight=False)
    stdout.print(f"  card: {info.path / 'README.md'}", highlight=False)


@adapters.command("verify")
@click.argument("bundles", nargs=-1)
@PATH_OPTION
def adapters_verify(bundles: tuple[str, ...], paths: tuple[Path, ...]) -> None:
    """Re-hash every file of the given (default: all installed) bundles; exit 2 naming bad files.

    \b
    Examples:
      mint-distill adapters verify
      mint-distill adapters verify poi ./downloads/amazon_mi
    """
    from ..console import console
    from ..errors import IntegrityError
    from .bundle import verify_bundle
    from .installed import discover_bundles, find_bundle

    targets = [find_bundle(name, list(paths)) for name in bundles] if bundles else discover_bundles(list(paths))[0]
    if not targets:
        console.print("no bundles found")
        return
    failed = []
    for info in targets:
        problems = verify_bundle(info.path)
        if problems:
            failed.append(f"{info.path}:\n" + "\n".join(f"    - {p}" for p in problems))
        else:
            console.print(
                f"[green]ok[/] {info.domain} ({escape(str(info.path))}, {len(info.manifest['files'])} files)", highlight=False
            )
    if failed:
        raise IntegrityError("bundles failed verification:\n  " + "\n  ".join(failed))


@adapters.command("import")
@click.argument("archive", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--to", "target", default=Path("adapters"), show_default=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--name", help="Install under this name instead of the bundle's domain.")
@click.option("--overwrite", is_flag=True, help="Replace an installed bundle of the same name.")
def adapters_import(archive: Path, target: Path, name: str | None, overwrite: bool) -> None:
    """Install a bundle from a .tar.gz or .zip archive (verified; nothing is written outside --to).

    \b
    Example:
      mint-distill adapters import ~/Downloads/amazon_mi.tar.gz
    """
    from ..console import console
    from .archive import import_bundle

    installed = import_bundle(archive, target, name=name, overwrite=overwrite)
    console.print(f"[green]ok[/] installed {escape(str(installed))}", highlight=False)


@click.command("adapt")
@click.option("--domain", required=True, help="Name of the new domain (the bundle's folder name).")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML source spec (like a recipe's data.source) or a whole recipe for the new catalog.",
)
@click.option(
    "--recipe",
    "base_recipe",
    default=Path("recipes/pointrec.yaml"),
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recipe extended when --data is a source spec.",
)
@click.option("--base", "base_model", metavar="MODEL", help="Student base encoder (students.biencoder.model).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to install the bundle: a new or empty folder, or an earlier bundle of this domain "
    "(default: adapters/DOMAIN).",
)
@click.option("--seeds", help="Seed examples for the teacher (teacher.tuning.seeds), e.g. for a non-POI domain.")
@click.option(
    "--teacher-from",
    "teacher_from",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder with a tuned teacher to reuse if it fits (repeatable; run_dir is searched too unless reuse_stages is false).",
)
@click.option("--dry-run", is_flag=True, help="Print the adapter recipe and stop.")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
def adapt(
    domain: str,
    data: Path,
    base_recipe: Path,
    base_model: str | None,
    out: Path | None,
    seeds: str | None,
    teacher_from: tuple[Path, ...],
    dry_run: bool,
    overrides: tuple[str, ...],
) -> None:
    """Train a domain adapter (LoRA bundle) for a new catalog from its review histories.

    Runs data -> teacher -> generate -> filter -> LoRA training -> package with a recipe built
    from the POI recipe (or --recipe, or the recipe given as --data): the cross-encoder and the
    Pointrec evaluation are left out. A teacher adapter tuned in another run with the same
    teacher settings and seeds is copied instead of tuned again.

    \b
    Examples:
      mint-distill adapt --domain restaurants --data my_reviews.yaml
      mint-distill adapt --domain amazon_mi --data recipes/amazon_mi.yaml
      mint-distill adapt --domain books --data books.yaml --base embedded:all-minilm-l6-v2 --dry-run

    \b
    A source spec for a CSV of reviews (paths relative to the spec file work):
      format: table
      path: reviews.csv
      columns: {user: reviewer_id, item: book_id, text: review, rating: stars}
      items: {path: books.csv, item: book_id, name: title, categories: genres}
    """
    import yaml

    from ..console import console, is_quiet
    from .adapt import adapt as run_adapt
    from .adapt import build_adapt_recipe

    recipe = build_adapt_recipe(
        domain, data, base_recipe=base_recipe, base_model=base_model, out=out, seeds=seeds, overrides=overrides
    )
    if dry_run:
        click.echo(yaml.safe_dump(recipe.model_dump(mode="json", exclude_unset=True), sort_keys=False), nl=False)
        return
    result = run_adapt(recipe, teacher_from=list(teacher_from), quiet=is_quiet())
    if result.reused_teacher:
        console.print(f"reused the teacher adapter of {result.reused_teacher}", highlight=False, markup=False)
    console.print(
        f"[green]ok[/] bundle {domain} in {escape(str(result.bundle))} (run folder {escape(str(result.run.run_root))})", highlight=False
    )
