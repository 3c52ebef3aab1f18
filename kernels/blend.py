"""The one rule that mixes the models' targets into the manual parameters (live and render --ai)."""

from .jit import njit

from . import params as P


@njit(cache=True, nogil=True)
def blend_targets(params, ai_targets, ai_mask, effective):
    """effective = params with the models' targets mixed in by ai.amount where ai_mask is
    set and ai.enabled is on; output.gain_db stays manual while loudness.auto is on (the
    chain's follower owns the gain then). All (N_PARAMS,) float64."""
    amount = params[P.P_AI_AMOUNT] if params[P.P_AI_ENABLED] >= 0.5 else 0.0
    auto = params[P.P_LOUD_AUTO] >= 0.5
    for k in range(params.shape[0]):
        v = params[k]
        if ai_mask[k] != 0.0 and amount > 0.0 and not (auto and k == P.P_OUTPUT_GAIN):
            v += amount * (ai_targets[k] - v)
        effective[k] = v
