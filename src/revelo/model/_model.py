"""REVELO: the user-facing model class (AnnData in, numpy/pandas out)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch
from scvi.data import AnnDataManager
from scvi.data.fields import (
    CategoricalJointObsField,
    CategoricalObsField,
    LayerField,
    NumericalJointObsField,
    NumericalObsField,
)
from scvi.model._utils import parse_device_args
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin, VAEMixin
from scvi.train import TrainingPlan, TrainRunner

from revelo._constants import EXPRESSION_KEYS, REGISTRY_KEYS, STATE_NAMES, check_likelihood
from revelo._validate import check_spliced_unspliced
from revelo.module import REVELOVAE
from revelo.module._module import covariates_of
from revelo.pp._moments import neighbor_mean, neighbor_weights
from revelo.pp._steady_state import steady_state_fit

from ._callbacks import training_callbacks
from ._checks import (
    check_covariates,
    check_model_params,
    check_registrable,
    check_same_genes,
    check_train_params,
)
from ._data import TensorBatches, TensorDataSplitter, as_tensor
from ._distributed import ddp_strategy
from ._docs import query_docs
from ._evidence import EvidenceMixin, kl_loss_kwargs
from ._init import initial_cell_order, switch_profile
from ._uncertainty import UncertaintyMixin

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

# Registered fields that hold category codes rather than values.
_INDEX_KEYS = (REGISTRY_KEYS.BATCH_KEY, REGISTRY_KEYS.CAT_COVS_KEY)

# Fraction of free GPU memory the registered data may take to be kept on the device.
_DEVICE_DATA_FRACTION = 0.25


class REVELO(EvidenceMixin, UncertaintyMixin, VAEMixin, UnsupervisedTrainingMixin, BaseModelClass):
    """RNA velocity with a variational kinetic model.

    An amortized Gaussian encoder maps each cell's spliced and unspliced moments to a latent
    z; a decoder maps z to every gene's latent time and kinetic state, and the closed-form
    solution of the splicing ODE with learned per-gene rates gives the expected abundances.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    n_hidden
        Units per hidden layer.
    n_latent
        Latent dimension.
    n_layers
        Hidden layers in encoder and decoder.
    dropout_rate
        Encoder dropout.
    t_max
        Length of the latent time axis.
    likelihood
        Observation model: ``"gaussian"`` on the scaled moments ``Ms``/``Mu`` (the default,
        as VeloVI), or ``"poisson"`` / ``"nb"`` (negative binomial) on raw counts, registered
        with ``setup_anndata(adata, spliced_layer="spliced", unspliced_layer="unspliced")``.
        Count models need no kNN smoothing: expected counts are the cell's size factor ×
        a per-gene scale × the kinetic abundance. The per-gene scale is
        ``var["Ms_scale"]``/``var["Mu_scale"]`` when :func:`revelo.pp.preprocess` wrote them,
        otherwise the 99th percentile of the size-normalised counts, so velocities are in the
        units of the scaled moments ``Ms``/``Mu`` for every likelihood.
    **module_kwargs
        Further options of :class:`~revelo.module.REVELOVAE`.

    Examples
    --------
    >>> adata = revelo.pp.preprocess(revelo.datasets.simulate())
    >>> revelo.REVELO.setup_anndata(adata)
    >>> model = revelo.REVELO(adata)
    >>> model.train()
    >>> velocity = model.get_velocity()
    """

    _module_cls = REVELOVAE

    def __init__(
        self,
        adata: AnnData,
        n_hidden: int = 256,
        n_latent: int = 10,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        t_max: float = 20.0,
        likelihood: Literal["gaussian", "poisson", "nb"] = "gaussian",
        **module_kwargs,
    ):
        check_likelihood(likelihood)
        check_model_params(
            n_hidden=n_hidden,
            n_latent=n_latent,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            t_max=t_max,
        )
        super().__init__(adata)
        spliced = self._registered_array(REGISTRY_KEYS.X_KEY)
        unspliced = self._registered_array(REGISTRY_KEYS.U_KEY)
        covariate_init = self._covariate_init()
        if likelihood != "gaussian":
            covariate_init.update(self._count_init(spliced, unspliced))
            spliced, unspliced = self._kinetic_units(spliced, unspliced, covariate_init)
        if covariate_init["n_batch"] > 1:
            covariate_init["batch_log_scale_init"] = _batch_log_ratios(
                unspliced,
                spliced,
                self._batch_codes(),
                covariate_init["n_batch"],
            )
        u_switch, s_switch, top = switch_profile(unspliced, spliced)
        u_switch = np.maximum(u_switch, 1e-3)
        s_switch = np.maximum(s_switch, 1e-3)
        ratio, _ = steady_state_fit(spliced, unspliced)
        order = initial_cell_order(spliced, unspliced, ratio)
        # With β = 1 the induction steady state is (α, α/γ): start it just past the switch
        # point; each gene switches at the median initial time of its switch-point cells.
        init = {
            "alpha_init": 1.2 * u_switch,
            "beta_init": np.ones_like(u_switch),
            "gamma_init": np.clip(u_switch / s_switch, 0.05, 20.0),
            "switch_time_init": t_max * np.median(order[top], axis=0),
            "switch_unspliced": u_switch,
            "switch_spliced": s_switch,
            "steady_state_ratio": ratio,
            "residual_scale": np.maximum((unspliced - ratio * spliced).std(0), 1e-3),
        }
        # Only the shared clock reads the initial ordering during training.
        shared = module_kwargs.get("time_mode") == "shared"
        self._time_prior = t_max * order if shared else None
        init.update(covariate_init)
        init.update(module_kwargs)
        self.module = self._module_cls(
            n_genes=self.summary_stats.n_vars,
            n_hidden=n_hidden,
            n_latent=n_latent,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            t_max=t_max,
            likelihood=likelihood,
            **init,
        )
        self._model_summary_string = (
            f"REVELO model: {self.summary_stats.n_vars} genes, n_latent={n_latent}, "
            f"n_hidden={n_hidden}, n_layers={n_layers}, dropout_rate={dropout_rate}, "
            f"t_max={t_max}, likelihood={likelihood!r}"
        )
        if covariate_init["n_batch"] > 1:
            self._model_summary_string += f", n_batch={covariate_init['n_batch']}"
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------ data registration
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        spliced_layer: str = "Ms",
        unspliced_layer: str = "Mu",
        *,
        batch_key: str | None = None,
        categorical_covariate_keys: list[str] | None = None,
        continuous_covariate_keys: list[str] | None = None,
        size_factor_key: str | None = None,
        **kwargs,
    ) -> None:
        """Register spliced and unspliced abundances of ``adata`` with the model.

        Parameters
        ----------
        adata
            AnnData with the two layers, cells × genes, in memory and not a view (make one
            with ``adata = adata.copy()``). Nothing in it is changed except the scvi-tools
            registry entries ``uns["_scvi_uuid"]`` and ``uns["_scvi_manager_uuid"]`` and, with
            covariates, scvi-tools' encoded copies of them: ``obs["_scvi_batch"]``,
            ``obsm["_scvi_extra_categorical_covs"]``, ``obsm["_scvi_extra_continuous_covs"]``.
        spliced_layer
            Layer with spliced abundances (scaled first-order moments from
            :func:`revelo.pp.preprocess` by default).
        unspliced_layer
            Layer with unspliced abundances. For the count likelihoods (``REVELO(...,
            likelihood="nb")``) register raw counts: ``spliced_layer="spliced"``,
            ``unspliced_layer="unspliced"``.
        batch_key
            Column of ``obs`` with the batch (sample, protocol, donor) of each cell. The model
            is conditioned on it: the encoder and decoder see it, and each batch gets its own
            per-gene factors on the expected u and s, so technical differences between samples
            are not read as kinetics. Count likelihoods also normalise library sizes per batch.
            Velocities are reported on the first batch's scale.
        categorical_covariate_keys
            Further categorical ``obs`` columns, handled like the batch.
        continuous_covariate_keys
            Continuous ``obs`` columns (e.g. percent mitochondrial counts): given to the encoder
            and decoder and acting log-linearly on each gene's expected u and s.
        size_factor_key
            Count likelihoods: ``obs`` column with each cell's size factor (applied to both
            layers). By default each layer's library over the model's genes divided by its
            batch's median.
        **kwargs
            Passed to :class:`~scvi.data.AnnDataManager`'s registration.

        Raises
        ------
        KeyError
            When a layer is missing (the message lists the layers present).
        TypeError
            When a layer is float16 or not numeric, or the two layers differ in dtype.
        ValueError
            When ``adata`` is a view or backed, names are duplicated, the layers differ in
            shape, or hold NaN, infinite or negative values, or a covariate column is missing
            or holds missing values.
        """
        check_registrable(adata, spliced_layer, unspliced_layer)
        check_covariates(
            adata,
            batch_key=batch_key,
            categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys,
            size_factor_key=size_factor_key,
        )
        setup_method_args = cls._get_setup_method_args(**locals())
        fields = [
            LayerField(REGISTRY_KEYS.X_KEY, spliced_layer, is_count_data=False),
            LayerField(REGISTRY_KEYS.U_KEY, unspliced_layer, is_count_data=False),
        ]
        if batch_key is not None:
            fields.append(CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key))
        if categorical_covariate_keys:
            fields.append(
                CategoricalJointObsField(REGISTRY_KEYS.CAT_COVS_KEY, categorical_covariate_keys)
            )
        if continuous_covariate_keys:
            fields.append(
                NumericalJointObsField(REGISTRY_KEYS.CONT_COVS_KEY, continuous_covariate_keys)
            )
        if size_factor_key is not None:
            fields.append(NumericalObsField(REGISTRY_KEYS.SIZE_FACTOR_KEY, size_factor_key))
        adata_manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **kwargs)
        cls.register_manager(adata_manager)

    def _registered_array(self, key: str, adata: AnnData | None = None) -> np.ndarray:
        manager = self.get_anndata_manager(adata or self.adata, required=True)
        data = manager.get_from_registry(key)
        if hasattr(data, "toarray"):
            data = data.toarray()
        return np.asarray(data, dtype=np.float32)

    def _registered_tensors(self, adata: AnnData | None = None) -> dict[str, torch.Tensor]:
        """Every registered field as a tensor: the two layers, covariates, size factors."""
        manager = self.get_anndata_manager(adata or self.adata, required=True)
        tensors = {}
        for key in manager.data_registry:
            dtype = torch.long if key in _INDEX_KEYS else torch.float32
            data = self._registered_array(key, adata)
            tensors[key] = as_tensor(data.reshape(len(data), -1), dtype=dtype)
        return tensors

    def _batch_codes(self) -> np.ndarray:
        """Each training cell's batch code (all 0 without a registered batch)."""
        if REGISTRY_KEYS.BATCH_KEY not in self.adata_manager.data_registry:
            return np.zeros(self.adata.n_obs, dtype=int)
        return self._registered_array(REGISTRY_KEYS.BATCH_KEY).ravel().astype(int)

    def _covariate_init(self) -> dict:
        """Covariate sizes of the registered data, and the continuous ones' centring."""
        manager = self.adata_manager
        init = {"n_batch": self.summary_stats.get("n_batch", 1)}
        if REGISTRY_KEYS.CAT_COVS_KEY in manager.data_registry:
            state = manager.get_state_registry(REGISTRY_KEYS.CAT_COVS_KEY)
            init["n_cats_per_cov"] = list(state.n_cats_per_key)
        if REGISTRY_KEYS.CONT_COVS_KEY in manager.data_registry:
            cont = self._registered_array(REGISTRY_KEYS.CONT_COVS_KEY)
            init["n_continuous_cov"] = cont.shape[1]
            init["continuous_center"] = cont.mean(0)
            init["continuous_scale"] = cont.std(0)
        return init

    def _count_init(self, spliced: np.ndarray, unspliced: np.ndarray) -> dict:
        """Count likelihoods: per-batch median libraries and the per-gene count scales."""
        setup_args = self.adata_manager.registry["setup_args"]
        check_spliced_unspliced(
            self.adata,
            spliced_layer=setup_args["spliced_layer"],
            unspliced_layer=setup_args["unspliced_layer"],
            counts=True,
        )
        batch = self._batch_codes()
        library = np.stack((spliced.sum(1), unspliced.sum(1)), axis=1)
        median = np.ones((batch.max() + 1, 2), dtype=np.float32)
        for code in range(len(median)):
            for layer in range(2):
                values = library[batch == code, layer]
                values = values[values > 0]
                if len(values):
                    median[code, layer] = np.median(values)
        var = self.adata.var
        if "Ms_scale" in var and "Mu_scale" in var:
            scale = np.stack((var["Ms_scale"].to_numpy(), var["Mu_scale"].to_numpy()))
        else:
            size = self._initial_size_factors(library, median, batch)
            scale = np.stack(
                [_robust_max(layer / size[:, [i]]) for i, layer in enumerate((spliced, unspliced))]
            )
        return {
            "library_median": median,
            "count_scale": np.maximum(scale, 1e-3).astype(np.float32),
        }

    def _kinetic_units(
        self, spliced: np.ndarray, unspliced: np.ndarray, init: dict
    ) -> tuple[np.ndarray, np.ndarray]:
        """Registered counts in the kinetic units, for data-driven starting values.

        Size-normalised, scaled counts, averaged over each cell's neighbours when
        ``obsp["connectivities"]`` holds a graph (as :func:`revelo.pp.preprocess` writes, also
        with ``smooth=False``).
        """
        library = np.stack((spliced.sum(1), unspliced.sum(1)), axis=1)
        size = self._initial_size_factors(library, init["library_median"], self._batch_codes())
        scale = init["count_scale"]
        spliced = spliced / size[:, [0]] / scale[0]
        unspliced = unspliced / size[:, [1]] / scale[1]
        graph = self.adata.obsp.get("connectivities")
        if graph is not None:
            # The upper quantiles behind the switch anchors are inflated by count noise;
            # neighbour means (only for these starting values) remove most of it.
            weights = neighbor_weights(graph)
            spliced, unspliced = neighbor_mean(weights, spliced), neighbor_mean(weights, unspliced)
        return spliced, unspliced

    def _initial_size_factors(
        self, library: np.ndarray, median: np.ndarray, batch: np.ndarray
    ) -> np.ndarray:
        """Cells × 2 size factors of spliced and unspliced, as the module computes them."""
        if REGISTRY_KEYS.SIZE_FACTOR_KEY in self.adata_manager.data_registry:
            given = self._registered_array(REGISTRY_KEYS.SIZE_FACTOR_KEY).reshape(-1, 1)
            return np.maximum(np.concatenate((given, given), axis=1), 1e-8)
        return np.maximum(library / median[batch], 1e-3)

    @torch.inference_mode()
    def _scaled_spliced(self, adata: AnnData | None = None) -> np.ndarray:
        """Observed spliced abundances in the velocities' units.

        The registered layer for the Gaussian likelihood; size-normalised, scaled counts for
        the count likelihoods.
        """
        if self.module.likelihood == "gaussian":
            return self._registered_array(REGISTRY_KEYS.X_KEY, adata)
        tensors = self._registered_tensors(adata)
        out, _ = self.module.scaled_observation(
            *(tensors[key].to(self.device) for key in EXPRESSION_KEYS),
            covariates_of(tensors, self.device),
        )
        return out.cpu().numpy()

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int | None = None,
        lr: float = 1e-2,
        weight_decay: float = 1e-2,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float = 0.9,
        validation_size: float | None = None,
        batch_size: int | None = None,
        early_stopping: bool = True,
        early_stopping_patience: int = 20,
        gradient_clip_val: float = 10.0,
        n_epochs_kl_warmup: int | None = None,
        kl_weight: float = 1.0,
        free_bits: float = 0.0,
        data_on_device: bool | None = None,
        plan_kwargs: dict | None = None,
        enable_checkpointing: bool = False,
        checkpoint_dir: str | None = None,
        ckpt_path: str | None = None,
        **trainer_kwargs,
    ):
        """Train the model with AdamW, gradient clipping and early stopping on the ELBO.

        Parameters
        ----------
        max_epochs
            Passes through the data. Defaults to ``min(500, max(100, 40_000 // n_cells * 10))``
            capped so large data sets need fewer passes; early stopping usually ends sooner.
        lr
            Learning rate.
        weight_decay
            AdamW weight decay.
        accelerator
            ``"cpu"``, ``"gpu"`` or ``"auto"``, as in lightning.
        devices
            Devices to use, as in lightning (with ``strategy="ddp"`` for several).
        train_size
            Fraction of cells for training; the rest validates.
        validation_size
            Fraction for validation; defaults to ``1 - train_size``.
        batch_size
            Minibatch size; 256 on CPU and 1024 on a GPU by default.
        early_stopping
            Stop when the validation ELBO has not improved for ``early_stopping_patience``
            epochs.
        early_stopping_patience
            Epochs without improvement before stopping.
        gradient_clip_val
            Gradient norm clip.
        n_epochs_kl_warmup
            Epochs over which the KL weight rises from 0 to ``kl_weight`` (and the switch
            anchoring fades out); defaults to a quarter of ``max_epochs``.
        kl_weight
            Final weight β of the KL term (β-VAE). Below 1 it lets the encoder keep more
            information per cell, a remedy when :meth:`get_latent_diagnostics` finds collapsed
            dimensions; above 1 it favours a smoother latent space. Only the objective changes:
            the reported ELBO, and early stopping, keep weight 1.
        free_bits
            Floor, in nats, on each latent dimension's batch-mean KL in the objective (free bits,
            Kingma et al. 2016): below it a dimension is not pulled toward the prior, which keeps
            dimensions active. 0 turns it off.
        data_on_device
            Keep the registered data in GPU memory for the whole run. Defaults to ``True`` on a
            GPU when the data take less than a quarter of its free memory.
        plan_kwargs
            Options of :class:`scvi.train.TrainingPlan`; they override the ones above.
        enable_checkpointing
            Write a lightning checkpoint (weights, optimizer, epoch, random-number state) to
            ``checkpoint_dir`` after every epoch: ``last.ckpt`` and ``epoch=<n>.ckpt``.
        checkpoint_dir
            Folder for the checkpoints; required with ``enable_checkpointing``.
        ckpt_path
            Resume from this checkpoint, e.g. ``"<checkpoint_dir>/last.ckpt"``, on a model
            built the same way on the same data; ``max_epochs`` counts the epochs already run.
            Pass ``enable_checkpointing`` and ``checkpoint_dir`` again to keep writing
            checkpoints (lightning warns when they are left out).
        **trainer_kwargs
            Options of :class:`scvi.train.Trainer` (lightning), e.g. ``strategy="ddp"``,
            ``enable_progress_bar=False`` or ``callbacks=[...]``.

        Raises
        ------
        ValueError
            When an option is out of range, the split leaves no training or validation cell,
            or the registered layers were changed since :meth:`setup_anndata` to hold NaN,
            infinite or negative values.
        revelo.model.NonFiniteLossError
            When the training loss becomes NaN or infinite; the model keeps the weights of the
            last epoch that ended finite.

        Notes
        -----
        On CPU, the same ``revelo.settings.seed`` (set before building the model) gives
        bit-identical weights and query results. On a GPU, cuDNN autotuning, atomic adds in
        scatter/index kernels and reductions whose order depends on the thread schedule can make
        results differ in the last bits between runs; ``torch.use_deterministic_algorithms(True)``
        and ``benchmark=False`` remove most of that at some speed cost. GPU and CPU results
        differ slightly in any case.
        """
        setup_args = self.adata_manager.registry["setup_args"]
        check_registrable(self.adata, setup_args["spliced_layer"], setup_args["unspliced_layer"])
        check_train_params(
            self.adata.n_obs,
            max_epochs=max_epochs,
            lr=lr,
            train_size=train_size,
            validation_size=validation_size,
            batch_size=batch_size,
            ckpt_path=ckpt_path,
        )
        trainer_kwargs["callbacks"] = training_callbacks(
            trainer_kwargs.get("callbacks"),
            enable_checkpointing=enable_checkpointing,
            checkpoint_dir=checkpoint_dir,
        )
        if ckpt_path is not None:
            trainer_kwargs["ckpt_path"] = str(ckpt_path)
        if "strategy" in trainer_kwargs:
            trainer_kwargs["strategy"] = ddp_strategy(trainer_kwargs["strategy"])
        n_cells = self.adata.n_obs
        if max_epochs is None:
            max_epochs = int(min(500, max(100, round(400 * 1000 / max(n_cells, 1)))))
        if n_epochs_kl_warmup is None:
            n_epochs_kl_warmup = max(1, max_epochs // 4)
        _, _, device = parse_device_args(accelerator, devices, return_device="torch")
        on_gpu = device.type == "cuda"
        if batch_size is None:
            batch_size = 1024 if on_gpu else 256

        tensors = self._registered_tensors()
        if getattr(self, "_time_prior", None) is not None:
            tensors[REGISTRY_KEYS.TIME_PRIOR_KEY] = torch.as_tensor(
                self._time_prior, dtype=torch.float32
            ).unsqueeze(-1)
        if data_on_device is None:
            data_on_device = on_gpu and _fits_on_device(tensors, device)
        if data_on_device and trainer_kwargs.get("strategy") is None:
            tensors = {key: value.to(device) for key, value in tensors.items()}

        data_splitter = TensorDataSplitter(
            tensors, train_size=train_size, validation_size=validation_size, batch_size=batch_size
        )
        plan = {
            "lr": lr,
            "weight_decay": weight_decay,
            "optimizer": "AdamW",
            "n_epochs_kl_warmup": n_epochs_kl_warmup,
        }
        if self.module.covariate_parameters():
            # Weight decay would shrink the batch factors toward 1 and leave part of the batch
            # effect to the kinetics: exempt them.
            plan["optimizer"] = "Custom"
            plan["optimizer_creator"] = _adamw_without_decay_on(
                self.module.covariate_parameters(), lr=lr, weight_decay=weight_decay
            )
        plan.update(kl_loss_kwargs(kl_weight, free_bits))
        plan.update(plan_kwargs or {})
        training_plan = TrainingPlan(self.module, **plan)
        trainer = {
            "gradient_clip_val": gradient_clip_val,
            "early_stopping": early_stopping and data_splitter.n_val > 0,
            "early_stopping_patience": early_stopping_patience,
            "check_val_every_n_epoch": 1,
        }
        trainer.update(trainer_kwargs)
        runner = TrainRunner(
            self,
            training_plan=training_plan,
            data_splitter=data_splitter,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            **trainer,
        )
        return runner()

    # ------------------------------------------------------------------ queries
    def _batches(
        self, adata: AnnData | None, indices: Sequence[int] | None, batch_size: int | None
    ) -> tuple[AnnData, np.ndarray, TensorBatches]:
        adata = self._validate_anndata(adata)
        indices = np.arange(adata.n_obs) if indices is None else np.asarray(indices)
        batches = TensorBatches(
            self._registered_tensors(adata), indices, batch_size=batch_size or 1024
        )
        return adata, indices, batches

    @torch.inference_mode()
    def _posterior_means(
        self,
        keys: Sequence[str],
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 25,
        batch_size: int | None = None,
    ) -> tuple[AnnData, np.ndarray, dict[str, np.ndarray]]:
        """Average ``posterior_fit`` outputs over posterior draws, one minibatch at a time.

        Peak memory holds one minibatch's running sums, whatever ``n_samples`` is.
        """
        if n_samples < 1:
            msg = f"n_samples must be at least 1, got {n_samples}."
            raise ValueError(msg)
        adata, indices, batches = self._batches(adata, indices, batch_size)
        self.module.eval()
        device = self.device
        out: dict[str, list[np.ndarray]] = {key: [] for key in keys}
        for batch in batches:
            spliced = batch[REGISTRY_KEYS.X_KEY].to(device)
            unspliced = batch[REGISTRY_KEYS.U_KEY].to(device)
            covariates = covariates_of(batch, device)
            sums: dict[str, torch.Tensor] = {}
            for _ in range(n_samples):
                fit = self.module.posterior_fit(spliced, unspliced, covariates=covariates)
                for key in keys:
                    sums[key] = fit[key] if key not in sums else sums[key] + fit[key]
            for key in keys:
                out[key].append((sums[key] / n_samples).cpu().numpy())
        return adata, indices, {key: np.concatenate(value) for key, value in out.items()}

    def _frame(
        self, values: np.ndarray, adata: AnnData, indices: np.ndarray, return_numpy: bool
    ) -> np.ndarray | pd.DataFrame:
        if return_numpy:
            return values
        return pd.DataFrame(values, index=adata.obs_names[indices], columns=adata.var_names)

    @query_docs
    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        give_mean: bool = True,
        batch_size: int | None = None,
        return_dist: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Posterior mean (or one draw) of z per cell, cells × ``n_latent``.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        give_mean
            Return the posterior mean instead of a draw.
        %(batch_size)s
        return_dist
            Return ``(mean, variance)`` of q(z | u, s) instead.
        """
        _, _, batches = self._batches(adata, indices, batch_size)
        self.module.eval()
        means, variances, draws = [], [], []
        for batch in batches:
            out = self.module.inference(
                batch[REGISTRY_KEYS.X_KEY], batch[REGISTRY_KEYS.U_KEY], covariates_of(batch)
            )
            means.append(out["qzm"].cpu())
            variances.append(out["qzv"].cpu())
            draws.append(out["z"].cpu())
        if return_dist:
            return torch.cat(means).numpy(), torch.cat(variances).numpy()
        return torch.cat(means if give_mean else draws).numpy()

    @query_docs
    def get_latent_time(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 25,
        batch_size: int | None = None,
        return_numpy: bool = False,
    ) -> np.ndarray | pd.DataFrame:
        """Per-gene latent time of each cell on [0, t_max], cells × genes.

        The time a cell's state implies (induction: t_switch·ρ; induction steady state:
        t_switch; repression: t_switch plus the elapsed repression), weighted by the posterior
        probabilities of these three states and averaged over ``n_samples`` posterior draws.
        The off state, (u, s) = (0, 0), is left out: it is where induction starts and where
        repression ends, so a cell there may be early or late, and the other states'
        responsibilities decide. With ``time_mode="shared"`` every state takes the gene's time
        on the shared clock.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(n_samples)s
        %(batch_size)s
        return_numpy
            Return an array instead of a DataFrame indexed by cells with genes as columns.
        """
        adata, indices, out = self._posterior_means(
            ("time",), adata, indices, n_samples, batch_size
        )
        return self._frame(out["time"], adata, indices, return_numpy)

    @query_docs
    def get_velocity(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 25,
        velo_mode: Literal["spliced", "unspliced"] = "spliced",
        batch_size: int | None = None,
        return_numpy: bool = False,
    ) -> np.ndarray | pd.DataFrame:
        """Velocity per cell and gene, the mean over ``n_samples`` posterior draws.

        Spliced velocity is ds/dt = βu − γs, unspliced du/dt = α − βu, both on the fitted
        kinetics and weighted by the posterior state probabilities (zero in steady states), in
        the units of the registered layers per unit of latent time (for the count likelihoods,
        those of the scaled moments; see the ``likelihood`` option). With a batch, velocities
        are on the first batch's scale.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(n_samples)s
        velo_mode
            ``"spliced"`` (ds/dt) or ``"unspliced"`` (du/dt).
        %(batch_size)s
        return_numpy
            Return an array instead of a DataFrame.
        """
        key = {"spliced": "velocity", "unspliced": "velocity_u"}.get(velo_mode)
        if key is None:
            msg = f"velo_mode must be 'spliced' or 'unspliced', got {velo_mode!r}."
            raise ValueError(msg)
        adata, indices, out = self._posterior_means((key,), adata, indices, n_samples, batch_size)
        return self._frame(out[key], adata, indices, return_numpy)

    @query_docs
    def get_state_assignment(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        hard_assignment: bool = False,
        n_samples: int = 25,
        batch_size: int | None = None,
    ) -> np.ndarray | pd.DataFrame:
        """Posterior probabilities of the four kinetic states per cell and gene.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        hard_assignment
            Return the most probable state's name per cell and gene (a DataFrame of
            categoricals) instead of probabilities.
        %(n_samples)s
        %(batch_size)s

        Returns
        -------
        Soft: an array cells × genes × 4, the states ordered as ``revelo.REVELO.state_names``.
        Hard: a DataFrame cells × genes of state names.
        """
        adata, indices, out = self._posterior_means(
            ("state_probs",), adata, indices, n_samples, batch_size
        )
        probs = out["state_probs"]
        if not hard_assignment:
            return probs
        names = np.asarray(STATE_NAMES)[probs.argmax(-1)]
        frame = pd.DataFrame(names, index=adata.obs_names[indices], columns=adata.var_names)
        return frame.astype(pd.CategoricalDtype(list(STATE_NAMES)))

    state_names = STATE_NAMES

    @query_docs
    def get_expression_fit(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 25,
        batch_size: int | None = None,
        return_numpy: bool = False,
    ) -> tuple[np.ndarray | pd.DataFrame, np.ndarray | pd.DataFrame]:
        """Fitted ``(spliced, unspliced)`` per cell and gene, in the velocities' units.

        With covariates, each cell's fit includes its batch's (and covariates') factors, so it
        overlays the cell's (scaled) observations.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(n_samples)s
        %(batch_size)s
        return_numpy
            Return arrays instead of DataFrames.
        """
        adata, indices, out = self._posterior_means(
            ("fit_s", "fit_u"), adata, indices, n_samples, batch_size
        )
        return (
            self._frame(out["fit_s"], adata, indices, return_numpy),
            self._frame(out["fit_u"], adata, indices, return_numpy),
        )

    @query_docs
    def get_gene_likelihood(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 25,
        batch_size: int | None = None,
        return_numpy: bool = False,
    ) -> np.ndarray | pd.DataFrame:
        """Log-likelihood of each cell's observed (u, s) per gene under the fitted model.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(n_samples)s
        %(batch_size)s
        return_numpy
            Return an array instead of a DataFrame.
        """
        adata, indices, out = self._posterior_means(
            ("log_likelihood",), adata, indices, n_samples, batch_size
        )
        return self._frame(out["log_likelihood"], adata, indices, return_numpy)

    @query_docs
    def add_outputs(
        self,
        adata: AnnData | None = None,
        *,
        n_samples: int = 25,
        batch_size: int | None = None,
        root_key: str | None = None,
        root_cells: Sequence[str] | Sequence[int] | None = None,
        uncertainty: bool = True,
    ) -> None:
        """Write the model's results into an AnnData, with scVelo's key names.

        Parameters
        ----------
        adata
            AnnData with the same cells and genes as the model's (and the registered layers);
            defaults to the model's own.
        %(n_samples)s
        batch_size
            Minibatch size of the queries.
        root_key
            Boolean ``obs`` column marking root cells for the shared latent time.
        root_cells
            Names or positions of root cells; the root is inferred when neither is given.
        uncertainty
            Also write the per-cell velocity uncertainty (from the same number of draws).

        Returns
        -------
        Nothing; writes into ``adata``:

        - ``layers["velocity"]``, ``layers["velocity_u"]``: spliced and unspliced velocity,
          in the units of the registered layers (``Ms``/``Mu`` by default; the scaled moments'
          units for the count likelihoods) per unit of time;
        - ``layers["fit_t"]``: per-gene latent time on [0, t_max];
        - ``layers["fit_s"]``, ``layers["fit_u"]``: fitted spliced and unspliced values;
        - ``var["fit_alpha"]``, ``var["fit_beta"]``, ``var["fit_gamma"]``: kinetic rates;
          ``var["fit_t_"]``: switch time; ``var["fit_scaling"]``: the learned factor from
          kinetic to observed unspliced (observed u = fit_scaling × kinetic u), as in scVelo;
          ``var["fit_likelihood"]``: mean
          per-cell log-likelihood of the gene's (u, s);
        - ``var["velocity_genes"]``: genes used downstream (an existing column is kept,
          restricted to genes with a finite fit);
        - ``obs["latent_time"]``: one shared time per cell on [0, 1]
          (:func:`revelo.tl.latent_time`);
        - ``uns["velocity_params"]``: the settings of this call and the model;
        - with ``uncertainty``: ``obs["directional_variance"]``,
          ``obs["directional_difference"]``, ``obs["directional_cosine_sim_variance"]``,
          ``obs["directional_cosine_sim_difference"]``, ``obs["directional_cosine_sim_mean"]``
          (:meth:`get_directional_uncertainty` on the velocity genes) and, when ``adata`` has
          ``obsm["X_umap"]`` and ``obsp["distances"]``, the same five with the prefix
          ``extrinsic_`` (:meth:`get_extrinsic_uncertainty`).
        """
        from revelo.tl import latent_time

        adata = self._validate_anndata(adata)
        keys = ("velocity", "velocity_u", "time", "fit_s", "fit_u", "log_likelihood")
        _, _, out = self._posterior_means(keys, adata, None, n_samples, batch_size)
        adata.layers["velocity"] = out["velocity"]
        adata.layers["velocity_u"] = out["velocity_u"]
        adata.layers["fit_t"] = out["time"]
        adata.layers["fit_s"] = out["fit_s"]
        adata.layers["fit_u"] = out["fit_u"]

        rates = self.get_rates()
        adata.var["fit_alpha"] = rates["alpha"].to_numpy()
        adata.var["fit_beta"] = rates["beta"].to_numpy()
        adata.var["fit_gamma"] = rates["gamma"].to_numpy()
        adata.var["fit_t_"] = rates["t_switch"].to_numpy()
        adata.var["fit_scaling"] = rates["scaling"].to_numpy()
        likelihood = out["log_likelihood"].mean(0)
        adata.var["fit_likelihood"] = likelihood
        finite = np.isfinite(likelihood) & np.isfinite(out["velocity"]).all(0)
        if "velocity_genes" in adata.var:
            finite &= adata.var["velocity_genes"].to_numpy(dtype=bool)
        adata.var["velocity_genes"] = finite

        adata.uns["velocity_params"] = {
            "mode": "revelo",
            "n_samples": n_samples,
            "t_max": self.module.t_max,
            "model": self._model_summary_string,
        }
        latent_time(adata, fit_t_key="fit_t", root_key=root_key, root_cells=root_cells)
        if uncertainty:
            self._add_uncertainty(adata, n_samples=n_samples, batch_size=batch_size)

    @torch.inference_mode()
    def get_rates(self) -> pd.DataFrame:
        """Per-gene ``alpha``, ``beta``, ``gamma``, ``t_switch`` and unspliced ``scaling``.

        Observed unspliced = ``scaling`` × kinetic unspliced; the rates act on kinetic units.
        The result is indexed by gene.
        """
        alpha, beta, gamma = self.module.rates()
        columns = {
            "alpha": alpha,
            "beta": beta,
            "gamma": gamma,
            "t_switch": self.module.switch_time(),
            "scaling": self.module.unspliced_scaling(),
        }
        return pd.DataFrame(
            {key: value.cpu().numpy() for key, value in columns.items()},
            index=self.adata.var_names,
        )

    # ------------------------------------------------------------------ save and load
    def save(
        self,
        dir_path: str | Path,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        **kwargs,
    ) -> None:
        """Save the weights, options and gene names to ``dir_path`` (a folder).

        Parameters
        ----------
        dir_path
            Folder to write; it must not exist unless ``overwrite=True``.
        prefix
            Prefix of the file names.
        overwrite
            Replace what an earlier save wrote in ``dir_path``.
        save_anndata
            Also write the model's AnnData as ``adata.h5ad``.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.save`.
        """
        if Path(dir_path).exists() and not overwrite:
            msg = (
                f"{str(dir_path)!r} already exists; pass overwrite=True to replace what is "
                "saved there, or choose another folder."
            )
            raise ValueError(msg)
        super().save(
            str(dir_path), prefix=prefix, overwrite=overwrite, save_anndata=save_anndata, **kwargs
        )

    @classmethod
    def load(cls, dir_path: str | Path, adata: AnnData | None = None, **kwargs) -> REVELO:
        """Load a model written by :meth:`~revelo.REVELO.save`, in this or any other process.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            AnnData with the same genes, in the same order, as the model's training data, and
            the registered layers; it is registered as the model's was, which (re)writes
            ``uns["_scvi_uuid"]`` and ``uns["_scvi_manager_uuid"]`` and nothing else.
            Defaults to the AnnData saved with ``save_anndata=True``.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load` (``accelerator``,
            ``device``, ``prefix``, ``backup_url``).

        Raises
        ------
        FileNotFoundError
            When ``dir_path`` holds no saved model.
        ValueError
            When the genes of ``adata`` differ from the model's (the message names them).
        """
        model_file = Path(dir_path) / f"{kwargs.get('prefix') or ''}model.pt"
        if not model_file.is_file() and kwargs.get("backup_url") is None:
            msg = f"No saved model at {str(model_file)!r}; pass the folder given to `save`."
            raise FileNotFoundError(msg)
        if adata is not None and adata is not False and model_file.is_file():
            saved = torch.load(model_file, map_location="cpu", weights_only=False)
            check_same_genes(saved["var_names"], adata.var_names)
        return super().load(str(dir_path), adata=adata, **kwargs)


def _fits_on_device(tensors: dict[str, torch.Tensor], device: torch.device) -> bool:
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    free, _ = torch.cuda.mem_get_info(device)
    return needed < _DEVICE_DATA_FRACTION * free


def _adamw_without_decay_on(exempt: list[torch.nn.Parameter], *, lr: float, weight_decay: float):
    """An optimizer creator for scvi-tools' training plan.

    AdamW with scvi-tools' ``eps``, and no weight decay on the ``exempt`` parameters.
    """
    exempt_ids = {id(parameter) for parameter in exempt}

    def create(params) -> torch.optim.Optimizer:
        params = list(params)
        groups = [
            {"params": [p for p in params if id(p) not in exempt_ids]},
            {"params": [p for p in params if id(p) in exempt_ids], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(
            [group for group in groups if group["params"]],
            lr=lr,
            weight_decay=weight_decay,
            eps=0.01,
        )

    return create


def _robust_max(values: np.ndarray, quantile: float = 0.99) -> np.ndarray:
    """Per column, the ``quantile`` of the values, or their maximum where that is 0."""
    top = np.quantile(values, quantile, axis=0)
    return np.where(top > 0, top, values.max(0))


def _batch_log_ratios(
    unspliced: np.ndarray, spliced: np.ndarray, batch: np.ndarray, n_batch: int
) -> np.ndarray:
    """Starting batch factors, ``(n_batch − 1) × 2 × genes``.

    Per batch after the first, the log-ratio of each gene's 95th percentile of u and s to the
    first batch's. An upper quantile reflects a scale difference rather than a difference in
    how many cells of each batch are far along; where either quantile is 0 the ratio starts
    at 0.
    """
    ratios = np.zeros((n_batch - 1, 2, spliced.shape[1]), dtype=np.float32)
    for layer, values in enumerate((unspliced, spliced)):
        top = np.stack(
            [
                np.quantile(values[batch == code], 0.95, axis=0)
                if (batch == code).any()
                else np.zeros(values.shape[1])
                for code in range(n_batch)
            ]
        )
        valid = (top[1:] > 0) & (top[:1] > 0)
        log_ratio = np.log(np.where(valid, top[1:], 1.0) / np.where(valid, top[:1], 1.0))
        ratios[:, layer] = np.clip(log_ratio, -3.0, 3.0)
    return ratios
