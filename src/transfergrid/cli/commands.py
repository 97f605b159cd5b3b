"""Import every command module so that each registers its commands on the app."""

from transfergrid.cli import (  # noqa: F401
    analyze_cmd,
    data_cmd,
    eval_cmd,
    models_cmd,
    plan_cmd,
    run_cmd,
    train_cmd,
)
