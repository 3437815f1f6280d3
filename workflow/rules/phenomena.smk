# Phenomena (docs/phenomena.md): timescales, incremental learning, grokking-like delays and the
# rate/generalisation trade-off, measured on the simulations and the DMFT of a named sweep.

# Which phenomenon figures each named sweep draws (`final_targets` adds them).
PHENOMENA = {
    "timescales": ["search_phase"],
    "timescales_lazy": ["lazy_time"],
    "incremental": ["incremental"],
    "grokking": ["grokking_curves", "grokking_delay"],
    "tradeoff": ["tradeoff"],
}


def phenomenon_rule(kind, caption, label, extra_outputs=None):
    """Output/params of one phenomenon rule (a figure in the report and a CSV of the numbers)."""
    return dict(
        fig=report(
            f"results/{{sweep}}/figures/{kind}.png",
            caption=f"../report/{caption}.rst",
            category="{sweep}",
            subcategory="phenomena",
            labels={"sweep": "{sweep}", "figure": label},
        ),
        table=f"results/{{sweep}}/phenomena/{kind}.csv",
        **(extra_outputs or {}),
    )


rule phenomenon_search_phase:
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
    output:
        **phenomenon_rule("search_phase", "search_phase", "search phase vs ln(1/alpha)"),
    params:
        kind="search_phase",
        prior=lambda w: canonical(SWEEPS[w.sweep]["prior"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/{sweep}/logs/phenomenon_search_phase.log",
    script:
        "../scripts/phenomena_figure.py"


rule phenomenon_lazy_time:
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
    output:
        **phenomenon_rule("lazy_time", "lazy_time", "lazy time vs alpha"),
    params:
        kind="lazy_time",
        prior=lambda w: canonical(SWEEPS[w.sweep]["prior"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/{sweep}/logs/phenomenon_lazy_time.log",
    script:
        "../scripts/phenomena_figure.py"


rule phenomenon_incremental:
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
    output:
        **phenomenon_rule("incremental", "incremental", "incremental learning"),
    params:
        kind="incremental",
        prior=lambda w: canonical(SWEEPS[w.sweep]["prior"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/{sweep}/logs/phenomenon_incremental.log",
    script:
        "../scripts/phenomena_figure.py"


rule phenomenon_grokking_curves:
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
    output:
        **phenomenon_rule("grokking_curves", "grokking_curves", "grokking-like delay: curves"),
    params:
        kind="grokking_curves",
        prior=lambda w: canonical(SWEEPS[w.sweep]["prior"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/{sweep}/logs/phenomenon_grokking_curves.log",
    script:
        "../scripts/phenomena_figure.py"


rule phenomenon_grokking_delay:
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
    output:
        **phenomenon_rule("grokking_delay", "grokking_delay", "grokking-like delay vs (alpha, lambda)",
                          {"summary": "results/{sweep}/phenomena/grokking_delay_fit.csv"}),
    params:
        kind="grokking_delay",
        prior=lambda w: canonical(SWEEPS[w.sweep]["prior"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/{sweep}/logs/phenomenon_grokking_delay.log",
    script:
        "../scripts/phenomena_figure.py"


rule phenomenon_tradeoff:
    input:
        sims="results/{sweep}/simulations.nc",
        dmft="results/{sweep}/dmft.nc",
    output:
        **phenomenon_rule("tradeoff", "tradeoff", "rate vs generalisation"),
    params:
        kind="tradeoff",
        prior=lambda w: canonical(SWEEPS[w.sweep]["prior"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "results/{sweep}/logs/phenomenon_tradeoff.log",
    script:
        "../scripts/phenomena_figure.py"
