"""REVELO: the user-facing model class (AnnData in, numpy/pandas out)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Literal

import torch
from scvi.data import AnnDataManager
from scvi.model._utils import parse_device_args
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin, VAEMixin

from revelo._threads import with_thread_limit
from revelo._validation import (
    check_cells_unchanged,
    check_checkpoint,
    check_choice,
    check_covariates,
    check_likelihood,
    check_model_params,
    check_registrable,
    check_spliced_unspliced,
    check_train_params,
    check_training_options,
    warn_gaussian_on_counts,
)
from revelo.module import REVELOVAE

from ._callbacks import outputs_finite, training_callbacks
from ._data import anndata_fields, registered_layers, registered_tensors
from ._evidence import EvidenceMixin
from ._guard import guarded_training
from ._init import start_values
from ._persistence import PersistenceMixin
from ._plan import EpochLoggedTrainingPlan
from ._queries import QueryMixin
from ._regimes import select_regimes
from ._training import (
    CPU_BATCH_SIZE,
    GPU_BATCH_SIZE,
    default_max_epochs,
    plan_options,
    training_data,
)
from ._uncertainty import UncertaintyMixin

if TYPE_CHECKING:
    from anndata import AnnData

#: Shortest first fit (``max_epochs``) after which ``regimes="auto"`` chooses the regimes: a
#: shorter one does not order the cells.
MIN_REGIME_EPOCHS = 20


class REVELO(
    PersistenceMixin,
    QueryMixin,
    UncertaintyMixin,
    EvidenceMixin,
    VAEMixin,
    UnsupervisedTrainingMixin,
    BaseModelClass,
):
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
        with ``setup_anndata(adata, spliced_layer="spliced_counts",
        unspliced_layer="unspliced_counts")`` (where :func:`revelo.pp.preprocess` keeps them).
        Count models need no kNN smoothing: expected counts are the cell's size factor ×
        a per-gene scale × the kinetic abundance. The per-gene scale is
        ``var["Ms_scale"]``/``var["Mu_scale"]`` when :func:`revelo.pp.preprocess` wrote them,
        otherwise the 99th percentile of the size-normalised counts, so velocities are in the
        units of the scaled moments ``Ms``/``Mu`` for every likelihood.
    time_mode
        ``"gene"``: each gene places the cell freely on its own trajectory (VeloVI's).
        ``"shared"``: one clock per cell, which each gene may run ahead of or behind by at
        most ``gene_time_spread × t_max`` (see the model page).
    gene_time_spread
        Shared clock: the largest deviation of a gene's time from the cell's clock, as a
        fraction of ``t_max``.
    time_prior_weight
        Shared clock: weight of the pull toward a data-driven initial ordering of the cells
        during the KL warm-up.
    clock_uniform_weight
        Shared clock: weight of the term that keeps the cells' clocks spread over the axis.
    switch_penalty
        Weight of the pull of each gene's switch point toward an upper quantile of its data
        during the KL warm-up.
    state_prior_weight
        Weight of the anchoring of the states to the side of the steady-state line each cell
        lies on, during the KL warm-up.
    state_prior_margin
        Only entries more than this many residual spreads off the steady-state line are
        anchored; 0 anchors every entry.
    steady_scale_factor
        Gaussian likelihood: noise scale of the off state relative to the other states.
    noise_init
        Gaussian likelihood: initial noise scale of u and s.
    learn_unspliced_scaling
        Learn the per-gene factor from kinetic to observed unspliced (otherwise fixed at 1).
    regimes
        ``"full"``: every gene runs one induction and one repression. ``"auto"`` (the
        default): after a first fit, each gene's data along the cells' order (the potential of
        that fit's velocities on the neighbour graph) choose its regime (full switch,
        induction only, repression only from its induction steady state, or steady) and
        training continues with the states of that regime for a quarter of ``max_epochs``
        more, without dropout; ``add_outputs`` writes it to ``var["fit_regime"]`` (see the
        model page). Not with ``max_epochs`` below 20, nor when training resumes from a
        checkpoint: every gene then stays a full switch.
    n_branches
        Number of kinetic branches. Each branch has its own per-gene transcription rate and
        switch time; the decoder gives each cell weights over the branches, and the cell's α
        and switch time mix the branches' (see the model page; :meth:`get_rates` reports
        those of the cells' mean weights). Lineages that induce different
        genes, or the same genes at different times, get kinetics of their own (4 by
        default). 1: one set of kinetics for all cells; use it with ``time_mode="shared"``,
        whose clock the branches were measured to disorder (see the benchmarks page).

    Notes
    -----
    Starting values of the rates, switch times, count scales and covariate factors are derived
    from the registered data; they cannot be set by hand.

    Examples
    --------
    >>> adata = revelo.pp.preprocess(revelo.datasets.simulate())
    >>> revelo.REVELO.setup_anndata(adata)
    >>> model = revelo.REVELO(adata)
    >>> model.train()
    >>> velocity = model.get_velocity()
    """

    _module_cls = REVELOVAE
    _training_plan_cls = EpochLoggedTrainingPlan

    def __init__(
        self,
        adata: AnnData,
        n_hidden: int = 256,
        n_latent: int = 10,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        t_max: float = 20.0,
        likelihood: Literal["gaussian", "poisson", "nb"] = "gaussian",
        *,
        time_mode: Literal["gene", "shared"] = "gene",
        gene_time_spread: float = 0.1,
        time_prior_weight: float = 1.0,
        clock_uniform_weight: float = 30.0,
        switch_penalty: float = 0.2,
        state_prior_weight: float = 1.0,
        state_prior_margin: float = 1.5,
        steady_scale_factor: float = 0.1,
        noise_init: float = 0.1,
        learn_unspliced_scaling: bool = True,
        regimes: Literal["full", "auto"] = "auto",
        n_branches: int = 4,
    ):
        check_likelihood(likelihood)
        check_choice("regimes", regimes, ("full", "auto"))
        self._regimes = regimes
        check_model_params(
            n_hidden=n_hidden,
            n_latent=n_latent,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            t_max=t_max,
            n_branches=n_branches,
        )
        super().__init__(adata)
        # Queries compare their AnnData's genes with these, which in-place edits cannot change.
        self._model_genes = [str(name) for name in self.adata.var_names]
        layers = registered_layers(self)
        warn_gaussian_on_counts(self.adata, likelihood=likelihood, **layers)
        if likelihood != "gaussian":
            check_spliced_unspliced(self.adata, **layers, counts=True)
        init = start_values(self.adata_manager, likelihood=likelihood, t_max=t_max)
        order = init.pop("cell_order")
        # Only the shared clock reads the initial ordering during training.
        self._time_prior = t_max * order if time_mode == "shared" else None
        self.module = self._module_cls(
            n_genes=self.summary_stats.n_vars,
            n_hidden=n_hidden,
            n_latent=n_latent,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            t_max=t_max,
            likelihood=likelihood,
            time_mode=time_mode,
            gene_time_spread=gene_time_spread,
            time_prior_weight=time_prior_weight,
            clock_uniform_weight=clock_uniform_weight,
            switch_penalty=switch_penalty,
            state_prior_weight=state_prior_weight,
            state_prior_margin=state_prior_margin,
            steady_scale_factor=steady_scale_factor,
            noise_init=noise_init,
            learn_unspliced_scaling=learn_unspliced_scaling,
            n_branches=n_branches,
            **init,
        )
        self._model_summary_string = (
            f"REVELO model: {self.summary_stats.n_vars} genes, n_latent={n_latent}, "
            f"n_hidden={n_hidden}, n_layers={n_layers}, dropout_rate={dropout_rate}, "
            f"t_max={t_max}, likelihood={likelihood!r}"
        )
        if time_mode != "gene":
            self._model_summary_string += f", time_mode={time_mode!r}"
        self._model_summary_string += f", regimes={regimes!r}, n_branches={n_branches}"
        if init["n_batch"] > 1:
            self._model_summary_string += f", n_batch={init['n_batch']}"
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
            likelihood="nb")``) register raw counts: ``spliced_layer="spliced_counts"``,
            ``unspliced_layer="unspliced_counts"`` after :func:`revelo.pp.preprocess`.
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
        fields = anndata_fields(
            spliced_layer,
            unspliced_layer,
            batch_key=batch_key,
            categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys,
            size_factor_key=size_factor_key,
        )
        adata_manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **kwargs)
        cls.register_manager(adata_manager)

    # ------------------------------------------------------------------ training
    @with_thread_limit
    @guarded_training
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
            When the training loss, or the velocities of the first cells, become NaN or
            infinite; the model keeps the weights of the last epoch whose velocities were
            finite (or those from before training, and then ``is_trained_`` says whether they
            come from an earlier run).
        KeyboardInterrupt
            On Ctrl+C: the model keeps the weights of that moment and can be queried and saved;
            the message says how to resume (see the failure-behaviour page of the docs).

        Notes
        -----
        On CPU, the same ``revelo.settings.seed`` (set before building the model) gives
        bit-identical weights and query results. On a GPU, cuDNN autotuning, atomic adds in
        scatter/index kernels and reductions whose order depends on the thread schedule can make
        results differ in the last bits between runs; ``torch.use_deterministic_algorithms(True)``
        and ``benchmark=False`` remove most of that at some speed cost. GPU and CPU results
        differ slightly in any case.
        """
        check_training_options(
            train_size=train_size,
            validation_size=validation_size,
            weight_decay=weight_decay,
            early_stopping_patience=early_stopping_patience,
            gradient_clip_val=gradient_clip_val,
            n_epochs_kl_warmup=n_epochs_kl_warmup,
            kl_weight=kl_weight,
            free_bits=free_bits,
            accelerator=accelerator,
        )
        check_cells_unchanged(self.adata.n_obs, self.summary_stats.n_cells)
        check_registrable(self.adata, **registered_layers(self))
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
            check_checkpoint(self.module.state_dict(), ckpt_path)
            trainer_kwargs["ckpt_path"] = str(ckpt_path)
        if max_epochs is None:
            max_epochs = default_max_epochs(self.adata.n_obs)
        if n_epochs_kl_warmup is None:
            n_epochs_kl_warmup = max(1, max_epochs // 4)
        _, _, device = parse_device_args(accelerator, devices, return_device="torch")
        if batch_size is None:
            batch_size = GPU_BATCH_SIZE if device.type == "cuda" else CPU_BATCH_SIZE
        time_prior = getattr(self, "_time_prior", None)
        datamodule = training_data(
            registered_tensors(self.adata_manager),
            time_prior=None if time_prior is None else torch.as_tensor(time_prior).float(),
            device=device,
            data_on_device=data_on_device,
            distributed=trainer_kwargs.get("strategy") is not None,
            train_size=train_size,
            validation_size=validation_size,
            batch_size=batch_size,
        )
        plan = plan_options(
            self.module.covariate_parameters(),
            lr=lr,
            weight_decay=weight_decay,
            n_epochs_kl_warmup=n_epochs_kl_warmup,
            kl_weight=kl_weight,
            free_bits=free_bits,
            plan_kwargs=plan_kwargs,
        )
        trainer_kwargs = {
            "gradient_clip_val": gradient_clip_val,
            "early_stopping_patience": early_stopping_patience,
            "check_val_every_n_epoch": 1,
            **trainer_kwargs,
        }
        callbacks = list(trainer_kwargs["callbacks"])

        def fit(epochs: int):
            # scvi-tools adds its early stopping to the list it is given: start afresh each time.
            trainer_kwargs["callbacks"] = list(callbacks)
            return super(REVELO, self).train(
                max_epochs=epochs,
                accelerator=accelerator,
                devices=devices,
                early_stopping=early_stopping and datamodule.n_val > 0,
                plan_kwargs=plan,
                datamodule=datamodule,
                **trainer_kwargs,
            )

        result = fit(max_epochs)
        if (
            self._regimes == "auto"
            and ckpt_path is None
            and max_epochs >= MIN_REGIME_EPOCHS
            # A diverged first fit has no time to order the cells by; the guard reports it.
            and outputs_finite(self.module, datamodule.tensors)
        ):
            # The first fit's latent time orders the cells; each gene's data along it choose
            # its regime, and training continues with the states that regime opens.
            self.module.set_regimes(select_regimes(self))
            plan["n_epochs_kl_warmup"] = None
            # The queries above leave the module in evaluation mode, and the continuation runs
            # in it, without dropout: a fine-tuning of the first fit, as the benchmarks measured.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
                result = fit(max_epochs // 4)
        self._set_branch_mean()
        return result

    def _set_branch_mean(self) -> None:
        """Keep the training cells' mean branch weights, whose kinetics ``get_rates`` reports."""
        if self.module.n_branches == 1:
            return
        mean = torch.as_tensor(self.get_branch_weights().mean(0).to_numpy(), dtype=torch.float32)
        if torch.isfinite(mean).all():
            self.module.branch_mean.copy_(mean)
