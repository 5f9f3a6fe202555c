"""Scarce real data (abstract): real + synthetic mixes against real alone, compute-matched."""

from __future__ import annotations

import numpy as np

from synkit.analysis import scaling
from synkit.analysis.findings.context import Study
from synkit.analysis.findings.registry import finding
from synkit.analysis.findings.rules import UNMEASURED, directional, fmt_test, line, line_slope, line_value, negate
from synkit.analysis.findings.supervised import needs

SCARCE = "helpful below ~0.5M real ImageNet images (~38% of D_I = 1.3M) [abstract]"


@finding(100)
def scarce(study: Study, add) -> None:
    """The gain = loss(real n) - loss(mix holding n real images) at each real count n (means over seeds), and a line through
    the gains in log(n / D_I) (``rules.line``: its residual variance carries what a real count's seeds share, such as the whole
    real pool at D_I). 10a: the line at the smallest n > 0; 10b: the gain shrinks: -slope > 0; 10c: at the largest n (D_I)
    adding synthetic images no longer helps: -line(largest n) > 0, with the crossover real size (the line's zero, Fieller
    interval) beside the paper's ~38% of D_I. Each mix run trains with the steps of real alone at its real count (04_train),
    so the gain is the images' alone."""
    finding_text = "Adding synthetic images helps most when real images are scarce (abstract)"
    mix = study.mix
    if mix is None or mix.empty or mix["real_images"].nunique() < 3:
        for letter in "abc":
            add(f"10{letter}", finding_text, SCARCE, "no real + synthetic ladder with 3 or more real counts",
                "needs a PROMPT_SET@CFG+real:F source in 04_train", UNMEASURED)
        return
    source = mix.sort_values("real_images")["source"].iloc[0]
    mix = mix[mix["source"] == source].sort_values("real_images")
    d_i = study.d_i or float(mix["real_images"].max())
    x = np.log(mix["real_images"].to_numpy(float) / d_i)
    fit = line(x, mix["gain"].to_numpy(float))
    first, last = mix.iloc[0], mix.iloc[-1]
    t_a, t_b, t_c = line_value(fit, x[0]), negate(line_slope(fit)), negate(line_value(fit, x[-1]))
    src, gates = study.lab(source), needs(source)
    gains = ", ".join(f"{int(r.real_images)}: {r.gain:.3f}" for r in mix.itertuples())
    rates = ", ".join(f"{int(r.real_images)}: {r.exchange_rate:.1f}{' (extrapolated)' if r.extrapolated else ''}" for r in mix.itertuples())
    how = f"a line through the gains (means over seeds) at {len(mix)} real counts in log n, t-interval ({fit['df']:g} df)"
    add("10a", finding_text + ": the gain with few real images", SCARCE,
        f"{src}: gain = loss(real n) - loss(n real + as many synthetic), by n: {gains}; at {int(first['real_images'])}: {fmt_test(t_a)}",
        how + "; the mix trains the same steps as real alone", directional(t_a), gates)
    add("10b", finding_text + ": the gain shrinks as real images grow", SCARCE,
        f"slope of the gain in log n = {fmt_test(negate(t_b))}; synthetic images worth one real image, by real count: {rates or 'n/a'}",
        how + "; -slope > 0", directional(t_b), gates)
    cross = scaling.crossover(mix, d_i)
    where = "none (the gain does not fall as real images grow)" if not np.isfinite(cross["n_star"]) else (
        f"{cross['n_star']:.0f} real images = {cross['n_star'] / d_i:.2f} x D_I, 95% interval "
        f"[{cross['n_lo'] / d_i:.2f}, {cross['n_hi'] / d_i:.2f}] x D_I")
    add("10c", "Past a real-set size, adding synthetic images stops helping: the crossover (abstract)", SCARCE,
        f"the line at {int(last['real_images'])} real (D_I) = {fmt_test(negate(t_c))}; crossover: {where} (the paper: ~0.38 x D_I)",
        how + "; -gain at the largest n > 0; the crossover is the line's zero with Fieller's interval", directional(t_c), gates)
