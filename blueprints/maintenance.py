"""Timer-triggered upkeep: the hourly sweep that deletes expired job, batch and file data.

Only the trigger lives here; the work is ``shared.jobs.sweeper`` (imported on the first run, so
indexing the app stays cheap and HTTP-only instances never load it). The schedule is NCRONTAB
(``{second} {minute} {hour} {day} {month} {day-of-week}``, UTC): minute 23 of every hour, away
from the top of the hour when other scheduled work tends to land. The host runs one instance of a
timer function at a time across the app (a blob lease in ``AzureWebJobsStorage``), and
``run_on_startup`` stays off: a scale-out or restart must not start extra sweeps. A sweep missed
while the app was stopped runs once when it starts again (``use_monitor``, ``past_due``).
"""

import azure.functions as func

from shared.lazy import finish_warm_up

RETENTION_SWEEP = "data_retention_sweep"
RETENTION_SCHEDULE = "0 23 * * * *"

bp = func.Blueprint()


@bp.function_name(RETENTION_SWEEP)
@bp.timer_trigger(arg_name="timer", schedule=RETENTION_SCHEDULE, run_on_startup=False, use_monitor=True)
async def data_retention_sweep(timer: func.TimerRequest) -> None:
    finish_warm_up()
    from shared.jobs.sweeper import sweep

    await sweep()
