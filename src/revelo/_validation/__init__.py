"""Input validation shared by preprocessing, the model, the tools and the plots.

Every check raises an error whose message names the problem *and* the fix, and none modifies
its input. One module per kind of input:

- ``_anndata``: the AnnData as a whole (in memory, unique names, registrable, covariates, the
  genes of a trained model);
- ``_layers``: expression layers (present, shape, dtype, finite non-negative counts);
- ``_graph``: the neighbour graph and the cells it needs;
- ``_cells``: a selection of cells (the root cells of latent time);
- ``_genes``: a gene selection given as names or a boolean mask;
- ``_options``: the model's options (likelihood, time mode, architecture, training);
- ``_model_state``: a model's state and its queries' arguments (trained, genes, indices);
- ``_training``: the numeric options, accelerator and checkpoint of training;
- ``_paths``: a path a result will be written to;
- ``_preprocessing``: preprocessing's options and gene selection;
- ``_hints``: the call that writes each prerequisite, quoted by the messages.
"""

from __future__ import annotations

from ._anndata import (
    check_covariates,
    check_not_backed,
    check_registrable,
    check_same_genes,
    check_unique_names,
)
from ._cells import root_mask
from ._genes import gene_mask
from ._graph import check_min_cells, check_neighbors
from ._hints import HINT_MOMENTS, HINT_NEIGHBORS, HINT_VELOCITY
from ._layers import (
    check_layer,
    check_layers,
    check_spliced_unspliced,
    empty_cells_and_genes,
    warn_gaussian_on_counts,
)
from ._model_state import (
    NotTrainedError,
    check_cells_unchanged,
    check_indices,
    check_positive_int,
    check_query_anndata,
    check_trained,
)
from ._options import (
    check_choice,
    check_likelihood,
    check_model_params,
    check_time_mode,
    check_train_params,
    split_sizes,
)
from ._paths import check_output_path
from ._preprocessing import check_n_top_genes, raise_no_variable_genes
from ._training import (
    check_accelerator,
    check_checkpoint,
    check_checkpoint_matches,
    check_training_options,
)

__all__ = [
    "HINT_MOMENTS",
    "HINT_NEIGHBORS",
    "HINT_VELOCITY",
    "NotTrainedError",
    "check_accelerator",
    "check_cells_unchanged",
    "check_checkpoint",
    "check_checkpoint_matches",
    "check_choice",
    "check_covariates",
    "check_indices",
    "check_layer",
    "check_layers",
    "check_likelihood",
    "check_min_cells",
    "check_model_params",
    "check_n_top_genes",
    "check_neighbors",
    "check_not_backed",
    "check_output_path",
    "check_positive_int",
    "check_query_anndata",
    "check_registrable",
    "check_same_genes",
    "check_spliced_unspliced",
    "check_time_mode",
    "check_train_params",
    "check_trained",
    "check_training_options",
    "check_unique_names",
    "empty_cells_and_genes",
    "gene_mask",
    "raise_no_variable_genes",
    "root_mask",
    "split_sizes",
    "warn_gaussian_on_counts",
]
