"""Command line: ``revelo demo`` and ``revelo fit``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path


def _quiet() -> None:
    """Keep lightning's and scvi-tools' chatter out of the command line's output."""
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "scvi", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _train(adata, *, max_epochs: int | None, accelerator: str, seed: int):
    import revelo

    revelo.settings.seed = seed
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata)
    model.train(
        max_epochs=max_epochs,
        accelerator=accelerator,
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
    )
    return model


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
    adata = revelo.pp.preprocess(raw, n_top_genes=None, normalize=False)
    # The truth in the units of layers["Ms"]: scaling a gene rescales its velocity.
    scale = adata.var["Ms_scale"].to_numpy()
    adata.layers["true_velocity_Ms"] = adata.layers["true_velocity"] / scale

    start = time.perf_counter()
    model = _train(adata, max_epochs=args.max_epochs, accelerator=args.accelerator, seed=args.seed)
    seconds = time.perf_counter() - start
    model.add_outputs()

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
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    likelihood = adata.var["fit_likelihood"].to_numpy()
    genes = adata.var_names[np.argsort(likelihood)[::-1][:6]].tolist()
    figure = revelo.pl.phase_portrait(adata, genes, color="clusters", show=False, return_fig=True)
    figure.savefig(out / "phase_portraits.png", dpi=120, bbox_inches="tight")
    adata.write_h5ad(out / "revelo_demo.h5ad")

    print(f"revelo demo: {adata.n_obs} cells x {adata.n_vars} genes, {metrics['epochs']} epochs")
    print(f"  training time           {seconds:8.1f} s")
    print(f"  velocity sign agreement {metrics['velocity_sign_agreement']:8.3f}")
    print(f"  cosine to true velocity {metrics['velocity_cosine']:8.3f}")
    print(f"  latent time Spearman    {metrics['latent_time_spearman']:8.3f}")
    print(f"  written to {out}/: revelo_demo.h5ad, phase_portraits.png, metrics.json")
    return 0


def fit(args: argparse.Namespace) -> int:
    """Raw counts in, a copy with revelo's results out."""
    path = Path(args.input)
    if not path.is_file():
        msg = f"input file {str(path)!r} does not exist; pass the path of an .h5ad file."
        raise FileNotFoundError(msg)

    import anndata

    import revelo

    try:
        raw = anndata.read_h5ad(path)
    except OSError as error:
        msg = (
            f"cannot read {str(path)!r} as an .h5ad file ({error}); pass an AnnData written "
            "with `adata.write_h5ad`."
        )
        raise ValueError(msg) from error
    adata = revelo.pp.preprocess(raw)
    model = _train(adata, max_epochs=args.max_epochs, accelerator=args.accelerator, seed=args.seed)
    model.add_outputs()
    adata.write_h5ad(args.output)
    print(f"revelo fit: {adata.n_obs} cells x {adata.n_vars} genes -> {args.output}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="revelo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p_demo = commands.add_parser("demo", help="run the whole pipeline on a simulation")
    p_demo.add_argument("--out", default="demo_out", help="output folder")
    p_demo.add_argument("--n-obs", type=int, default=1000)
    p_demo.add_argument("--n-vars", type=int, default=100)
    p_demo.add_argument(
        "--t-max", type=float, default=20.0, help="time span of the simulation (see simulate)"
    )
    p_demo.add_argument("--max-epochs", type=int, default=None)
    p_demo.add_argument("--accelerator", default="auto")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.set_defaults(func=demo)

    p_fit = commands.add_parser("fit", help="fit raw counts and write the results")
    p_fit.add_argument("input", help="AnnData (.h5ad) with layers 'spliced' and 'unspliced'")
    p_fit.add_argument("-o", "--output", required=True, help="where to write the result")
    p_fit.add_argument("--max-epochs", type=int, default=None)
    p_fit.add_argument("--accelerator", default="auto")
    p_fit.add_argument("--seed", type=int, default=0)
    p_fit.set_defaults(func=fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``revelo`` command."""
    args = _parser().parse_args(argv)
    _quiet()
    try:
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
