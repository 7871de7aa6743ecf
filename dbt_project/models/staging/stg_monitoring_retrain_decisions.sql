-- One row per retraining run: trigger, challenger, guardrail decision, figures before and after.
{{ config(tags=['monitoring']) }}

select
    run_id,
    decided_at,
    trigger,
    trigger_day,
    labelled_through,
    reasons,
    trigger_figures,
    champion_before,
    challenger_version,
    promoted,
    champion_after,
    guardrail_reasons,
    before_log_loss,
    before_roc_auc,
    after_day,
    after_log_loss,
    after_roc_auc
from {{ source('monitoring', 'retrain_decisions') }}
