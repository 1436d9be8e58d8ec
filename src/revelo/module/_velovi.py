"""VeloVI's names for parameters of :class:`~revelo.module.REVELOVAE`, read-only."""

from __future__ import annotations

import torch


class VeloVINamesMixin:
    """Parameters of the module under the names VeloVI's module gives them, for VeloVI's code.

    Code written for ``scvi.external.VELOVI`` reads ``model.module.switch_time_unconstr``
    (VeloVI's tutorial writes its softplus to ``var["fit_t_"]``). revelo parameterises the
    switch time otherwise (``t_max · sigmoid(switch_raw)``), so what these names give is
    derived from revelo's parameters: not trained, not settable and not in ``state_dict``.
    """

    @property
    def switch_time_unconstr(self) -> torch.Tensor:
        """Per-gene switch time on VeloVI's unconstrained scale, detached.

        Its softplus is the switch time reported per gene
        (:meth:`~revelo.module.REVELOVAE.population_kinetics`, in (0, t_max)), up to float32
        rounding.
        """
        t_switch = self.population_kinetics()[1].detach()
        # softplus⁻¹(t) = log(exp(t) − 1), in a form that neither overflows nor loses small t
        return t_switch + torch.log(-torch.expm1(-t_switch))
