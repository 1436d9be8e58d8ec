"""Command line: `revelo demo` and `revelo fit`.

Only the standard library is imported before the arguments are parsed, so that `revelo --help`
answers at once; torch, scvi-tools and scanpy load when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
import warnings
from pathlib import Path

DESCRIPTION = """\
RNA velocity with a variational kinetic model.

  revelo fit counts.h5ad -o result.h5ad     raw spliced/unspliced counts in, results out
  revelo demo --out demo_out                the whole pipeline on a simulation

Run `revelo fit --help` or `revelo demo --help` for the options of each command.
"""

FIT_DESCRIPTION = """\
Preprocess raw counts (filter genes, normalise, kNN moments Ms/Mu, UMAP), train the model and
write the kept cells and genes with the results: velocities, latent time, kinetic rates and
their uncertainty, under scVelo's key names. The summary at the end lists every key written.
The output path is checked before any work: it may not be the input, an existing file is
replaced only with --force, and its folder must be writable; the file is written aside and
moved into place, so a failed run leaves no partial file.
"""

DEMO_DESCRIPTION = """\
Simulate spliced/unspliced counts with known kinetics, preprocess, train, and write the
results, a phase-portrait figure and the accuracy against the simulated truth.
"""


def _set_verbosity(args: argparse.Namespace) -> None:
    """Show progress and summaries; libraries' chatter only with --verbose."""
    import revelo

    if args.verbose:
        revelo.settings.verbosity = "debug"
        return
    revelo.settings.verbosity = "warning" if args.quiet else "info"
    # Third-party warnings (deprecations inside lightning, data-loader hints) are not the
    # user's to act on; revelo's own warnings still show, without a file path.
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"revelo(\.|$)")
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"revelo: warning: {message}", file=sys.stderr)


def _train(adata, args: argparse.Namespace, batch_key: str | None = None, **output_kwargs):
    """Register, train and add the outputs: the model, the seconds trained, the keys written."""
    import revelo

    revelo.settings.seed = args.seed
    likelihood = getattr(args, "likelihood", "gaussian")
    setup_kwargs = {"batch_key": batch_key}
    if likelihood != "gaussian":
        setup_kwargs.update(spliced_layer="spliced_counts", unspliced_layer="unspliced_counts")
    revelo.REVELO.setup_anndata(adata, **setup_kwargs)
    model = revelo.REVELO(adata, likelihood=likelihood)
    start = time.perf_counter()
    model.train(
        max_epochs=args.max_epochs, accelerator=args.accelerator, enable_model_summary=False
    )
    seconds = time.perf_counter() - start
    before = _keys(adata)
    model.add_outputs(**output_kwargs)
    return model, seconds, _keys(adata) - before


def _keys(adata) -> set[str]:
    """Every ``layers``, ``obs``, ``var``, ``obsm``, ``obsp`` and ``uns`` key, e.g. ``obs/x``."""
    fields = ("layers", "obs", "var", "obsm", "obsp", "uns")
    return {f"{field}/{key}" for field in fields for key in getattr(adata, field).keys()}


def _report(command: str, adata, model, *, seconds: float, written: set[str], files) -> None:
    """The end-of-run summary: data, genes kept, epochs, time, keys written, files."""
    steps = adata.uns.get("revelo_preprocess", {})
    n_input = steps.get("n_genes_input", adata.n_vars)
    epochs = len(model.history["elbo_train"])
    print(f"revelo {command}: {adata.n_obs} cells, {adata.n_vars} of {n_input} genes kept")
    print(f"  trained {epochs} epochs in {seconds:.1f} s")
    by_field: dict[str, list[str]] = {}
    for key in sorted(written):
        field, name = key.split("/", 1)
        by_field.setdefault(field, []).append(name)
    print("  keys written:")
    for field, names in by_field.items():
        lines = textwrap.wrap(", ".join(names), width=88)
        print(f"    {field:<7}" + "\n           ".join(lines))
    print("  files:")
    for path in files:
        print(f"    {Path(path).resolve()}")


def demo(args: argparse.Namespace) -> int:
    """Simulate, preprocess, train, and write results, a figure and accuracy metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    import revelo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = revelo.datasets.simulate(
        n_obs=args.n_obs, n_vars=args.n_vars, seed=args.seed, t_max=args.t_max
    )
    # Simulated genes all start at zero, so library size follows time: no per-cell normalisation.
    # The demo draws phase portraits only, so it needs no UMAP.
    adata = revelo.pp.preprocess(raw, n_top_genes=None, normalize=False, compute_umap=False)
    # The truth in the units of layers["Ms"]: scaling a gene rescales its velocity.
    scale = adata.var["Ms_scale"].to_numpy()
    adata.layers["true_velocity_Ms"] = adata.layers["true_velocity"] / scale

    model, seconds, written = _train(adata, args)

    velocity = revelo.tl.velocity_accuracy(adata, true_key="true_velocity_Ms")
    timing = revelo.tl.latent_time_accuracy(adata, true_key="true_t")
    metrics = {
        "n_obs": int(adata.n_obs),
        "n_vars": int(adata.n_vars),
        "epochs": len(model.history["elbo_train"]),
        "train_seconds": round(seconds, 2),
        "velocity_sign_agreement": float(velocity["sign_agreement"]),
        "velocity_cosine": float(velocity["cosine"]),
        "latent_time_spearman": float(timing["spearman"]),
        "median_gene_latent_time_spearman": float(timing["median_gene_spearman"]),
    }
    files = [out / "revelo_demo.h5ad", out / "phase_portraits.png", out / "metrics.json"]
    files[2].write_text(json.dumps(metrics, indent=2) + "\n")

    likelihood = np.nan_to_num(adata.var["fit_likelihood"].to_numpy(), nan=-np.inf)
    genes = adata.var_names[np.argsort(likelihood)[::-1][:6]].tolist()
    figure = revelo.pl.phase_portrait(adata, genes, color="clusters", show=False, return_fig=True)
    figure.savefig(files[1], dpi=120, bbox_inches="tight")
    adata.write_h5ad(files[0])

    _report("demo", adata, model, seconds=seconds, written=written, files=files)
    print("  accuracy against the simulated truth:")
    print(f"    velocity sign agreement {metrics['velocity_sign_agreement']:8.3f}")
    print(f"    cosine to true velocity {metrics['velocity_cosine']:8.3f}")
    print(f"    latent time Spearman    {metrics['latent_time_spearman']:8.3f}")
    return 0


def fit(args: argparse.Namespace) -> int:
    """Raw counts in, a copy with revelo's results out."""
    path = Path(args.input)
    if not path.is_file():
        msg = f"input file {str(path)!r} does not exist; pass the path of an .h5ad file."
        raise FileNotFoundError(msg)

    import anndata

    import revelo
    from revelo._atomic import write_atomically
    from revelo._validation import check_output_path

    # Before any work: never the input, never an existing file unless --force, writable.
    check_output_path(args.output, inputs=(path,), force=args.force)

    try:
        raw = anndata.read_h5ad(path)
    except OSError as error:
        msg = (
            f"cannot read {str(path)!r} as an .h5ad file ({error}); pass an AnnData written "
            "with `adata.write_h5ad`."
        )
        raise ValueError(msg) from error
    root_cells = _root_cells(raw, args.root_group)
    for option, column in (("--batch-key", args.batch_key), ("--root-key", args.root_key)):
        if column is not None and column not in raw.obs:
            msg = (
                f"{option} {column!r} is not a column of obs; the columns are "
                f"{list(raw.obs.columns)}."
            )
            raise KeyError(msg)
    adata = revelo.pp.preprocess(
        raw,
        n_top_genes=None if args.n_top_genes == 0 else args.n_top_genes,
        min_shared_counts=args.min_shared_counts,
        n_neighbors=args.n_neighbors,
        # Count likelihoods model the raw counts: no kNN smoothing.
        smooth=args.likelihood == "gaussian",
    )
    if root_cells is not None:
        root_cells = [name for name in root_cells if name in adata.obs_names]
    model, seconds, written = _train(
        adata, args, args.batch_key, root_key=args.root_key, root_cells=root_cells
    )
    # Written aside and moved into place, so a failure never leaves half a file.
    write_atomically(args.output, adata.write_h5ad)
    _report("fit", adata, model, seconds=seconds, written=written, files=[args.output])
    return 0


def _root_cells(adata, group: str | None) -> list[str] | None:
    """Names of the cells whose ``obs[column] == value`` for ``--root-group column=value``."""
    if group is None:
        return None
    column, sep, value = group.partition("=")
    if not sep or column not in adata.obs:
        msg = (
            f"--root-group {group!r} must be COLUMN=VALUE with an obs column, e.g. "
            f"clusters=Ductal; the columns are {list(adata.obs.columns)}."
        )
        raise ValueError(msg)
    labels = adata.obs[column].astype(str)
    if not (labels == value).any():
        msg = (
            f"no cell has obs[{column!r}] == {value!r}; the values are "
            f"{sorted(labels.unique())[:20]}."
        )
        raise ValueError(msg)
    return adata.obs_names[(labels == value).to_numpy()].tolist()


def _common_options(parser: argparse.ArgumentParser) -> None:
    training = parser.add_argument_group("training")
    training.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        metavar="N",
        help="most passes through the data; early stopping usually ends sooner (default: "
        "from the number of cells, 100 to 500)",
    )
    training.add_argument(
        "--accelerator",
        default="auto",
        choices=["auto", "cpu", "gpu", "mps"],
        help="device to train on (default: auto, a GPU when there is one)",
    )
    training.add_argument(
        "--seed", type=int, default=0, help="random seed, for reproducible runs (default: 0)"
    )
    output = parser.add_argument_group("messages")
    loudness = output.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show lightning's and scvi-tools' messages and warnings",
    )
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="show only warnings, errors and the summary"
    )


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="revelo", description=DESCRIPTION, formatter_class=formatter
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="command")

    p_fit = commands.add_parser(
        "fit",
        help="fit raw counts and write the results",
        description=FIT_DESCRIPTION,
        formatter_class=formatter,
    )
    p_fit.add_argument("input", help=".h5ad file with raw counts in layers spliced and unspliced")
    p_fit.add_argument(
        "-o", "--output", required=True, metavar="PATH", help=".h5ad file to write the results to"
    )
    p_fit.add_argument(
        "--force",
        action="store_true",
        help="replace the output file if it exists (the input is never replaced)",
    )
    genes = p_fit.add_argument_group("genes and cells")
    genes.add_argument(
        "--n-top-genes",
        type=int,
        default=2000,
        metavar="N",
        help="highly variable genes to keep before the velocity-gene filter; 0 keeps every "
        "gene with enough shared counts (default: 2000)",
    )
    genes.add_argument(
        "--min-shared-counts",
        type=int,
        default=20,
        metavar="N",
        help="least spliced+unspliced counts a gene needs in cells where both are seen "
        "(default: 20)",
    )
    genes.add_argument(
        "--n-neighbors",
        type=int,
        default=30,
        metavar="K",
        help="neighbours per cell for the moments and the graph (default: 30)",
    )
    model = p_fit.add_argument_group("model")
    model.add_argument(
        "--likelihood",
        default="gaussian",
        choices=["gaussian", "poisson", "nb"],
        help="gaussian models the kNN moments Ms/Mu; poisson and nb (negative binomial) "
        "model the raw counts, without smoothing (default: gaussian)",
    )
    model.add_argument(
        "--batch-key",
        default=None,
        metavar="COLUMN",
        help="obs column naming each cell's batch or sample; the model learns per-batch factors",
    )
    root = p_fit.add_argument_group("latent time")
    root.add_argument(
        "--root-key",
        default=None,
        metavar="COLUMN",
        help="boolean obs column marking the cells where the process starts",
    )
    root.add_argument(
        "--root-group",
        default=None,
        metavar="COLUMN=VALUE",
        help="start the process at the cells of one group, e.g. clusters=Ductal (default: "
        "the root is inferred)",
    )
    _common_options(p_fit)
    p_fit.set_defaults(func=fit)

    p_demo = commands.add_parser(
        "demo",
        help="run the whole pipeline on a simulation",
        description=DEMO_DESCRIPTION,
        formatter_class=formatter,
    )
    p_demo.add_argument(
        "--out",
        default="demo_out",
        metavar="DIR",
        help="folder for the results, the figure and metrics.json (default: demo_out)",
    )
    p_demo.add_argument(
        "--n-obs", type=int, default=1000, metavar="N", help="simulated cells (default: 1000)"
    )
    p_demo.add_argument(
        "--n-vars", type=int, default=100, metavar="N", help="simulated genes (default: 100)"
    )
    p_demo.add_argument(
        "--t-max",
        type=float,
        default=20.0,
        metavar="T",
        help="time span of the simulation (default: 20)",
    )
    _common_options(p_demo)
    p_demo.set_defaults(func=demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``revelo`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"revelo {version('revelo')}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _set_verbosity(args)
        return args.func(args)
    except Exception as error:
        if not _is_input_error(error):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"revelo {args.command}: error: {message}", file=sys.stderr)
        return 2


def _is_input_error(error: Exception) -> bool:
    """Errors whose message tells the user what to fix; anything else is a bug to report."""
    if isinstance(error, ValueError | KeyError | TypeError | OSError):
        return True
    callbacks = sys.modules.get("revelo.model._callbacks")
    return callbacks is not None and isinstance(error, callbacks.NonFiniteLossError)


if __name__ == "__main__":
    sys.exit(main())
