"""Import every command module so that each registers its commands on the app."""

from transfergrid.cli import (  # noqa: F401
    analyze_cmd,
    compare_cmd,
    data_cmd,
    eval_cmd,
    import_cmd,
    models_cmd,
    run_cmd,
    train_cmd,
)
