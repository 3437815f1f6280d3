"""Layer 3, measurement on curves and Datasets: timescales and plateaus (``analysis``), seed
statistics and theory–simulation deviations (``compare``), phase diagrams, the phenomena's
leading-order predictions (``predictions``) and measurements (``phenomena``), and the
phenomena table, one row per phenomenon figure (``phenomenon_kinds``)."""
