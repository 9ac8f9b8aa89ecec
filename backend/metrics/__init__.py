"""Measuring teacher and student the same way; the report, MATLAB data and plots built from the measurements.

Modules (import the one you need; this package imports nothing, so a light caller stays light):
    effectiveness  classification_metrics
    compression    count_parameters, count_layers, sparsity
    efficiency     model_size, memory_footprint, measure_latency, time_full_pass
    complexity     count_flops, space_complexity
    measure        measure_pair
    report         build_report, report_to_json, sanitize_json
    jsonsafe       sanitize_json, jsonable, to_strict_json (the one NaN/numpy/torch -> JSON rule; no torch import)
    matlab         matlab_data, matlab_all_models, metrics_csv
    plots          PLOT_KINDS, render_plot
"""
