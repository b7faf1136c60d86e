"""Every statement the optimizer runs, by name, once for both engines.
The domain modules say what they read or change (`statements.END_EXPERIMENT`);
the SQL is here, next to the schema (services/optimizer/storage/schema.py)."""

from __future__ import annotations

from services.optimizer.storage.statement import Statement

# The schema's own record.
MIGRATED = Statement("SELECT version FROM schema_migrations")
IS_MIGRATED = Statement("SELECT 1 FROM schema_migrations WHERE version = :version")
RECORD_MIGRATION = Statement("INSERT INTO schema_migrations(version, description) VALUES (:version, :description)")
SCHEMA_VERSION = Statement("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")

# Prompts: their versions, the active one, and who changed what.
NEXT_PROMPT_VERSION = Statement("SELECT COALESCE(MAX(version), 0) + 1 FROM prompt_versions WHERE name = :name")
ADD_PROMPT_VERSION = Statement(
    "INSERT INTO prompt_versions(name, version, template, created_at, variables, note) "
    "VALUES (:name, :version, :template, :created_at, :variables, :note)"
)
AUDIT_PROMPT = Statement(
    "INSERT INTO prompt_audit(at, name, action, version, previous_version, detail, actor) "
    "VALUES (:at, :name, :action, :version, :previous, :detail, :actor)"
)
HAS_ACTIVE_PROMPT = Statement("SELECT 1 FROM active_prompts WHERE name = :name")
HAS_PROMPT_VERSIONS = Statement("SELECT 1 FROM prompt_versions WHERE name = :name")
ACTIVATE_FIRST_VERSION = Statement("INSERT INTO active_prompts(name, version) VALUES (:name, 1)")
ACTIVE_VERSION = Statement("SELECT version FROM active_prompts WHERE name = :name")
SET_ACTIVE_VERSION = Statement("UPDATE active_prompts SET version = :version WHERE name = :name")
_VERSION_COLUMNS = "name, version, template, variables, note, created_at"
ACTIVE_PROMPT = Statement(
    "SELECT v.name, v.version, v.template, v.variables, v.note, v.created_at FROM active_prompts a "
    "JOIN prompt_versions v ON v.name = a.name AND v.version = a.version WHERE a.name = :name"
)
PROMPT_VERSION = Statement(f"SELECT {_VERSION_COLUMNS} FROM prompt_versions WHERE name = :name AND version = :version")
PROMPT_VERSIONS = Statement(f"SELECT {_VERSION_COLUMNS} FROM prompt_versions WHERE name = :name ORDER BY version")
PROMPTS = Statement(
    "SELECT v.name, a.version, COUNT(*), MAX(v.created_at) FROM prompt_versions v "
    "JOIN active_prompts a ON a.name = v.name GROUP BY v.name, a.version ORDER BY v.name"
)
PROMPT_HISTORY = Statement(
    "SELECT at, action, version, previous_version, detail, actor FROM prompt_audit WHERE name = :name ORDER BY id"
)
VERSION_BEFORE = Statement(
    "SELECT previous_version FROM prompt_audit WHERE name = :name AND action = 'activated' "
    "AND version = :version AND previous_version IS NOT NULL ORDER BY id DESC LIMIT 1"
)

# Experiments and their arms.
RUNNING_EXPERIMENT = Statement("SELECT id FROM experiments WHERE prompt = :prompt AND state = :state")
START_EXPERIMENT = Statement(
    "INSERT INTO experiments(prompt, salt, state, control_version, min_samples, alpha, auto_promote, "
    "created_at, started_by) VALUES (:prompt, :salt, :state, :control_version, :min_samples, :alpha, "
    ":auto_promote, :created_at, :started_by) RETURNING id"
)
ADD_ARM = Statement("INSERT INTO arms(experiment_id, version, weight) VALUES (:experiment_id, :version, :weight)")
EXPERIMENT = Statement(
    "SELECT id, prompt, salt, state, control_version, min_samples, alpha, auto_promote, created_at, ended_at, "
    "decision, started_by FROM experiments WHERE id = :id"
)
ARMS = Statement("SELECT version, weight FROM arms WHERE experiment_id = :experiment_id ORDER BY version")
LISTED_EXPERIMENTS = Statement(
    "SELECT id FROM experiments WHERE (:prompt = '' OR prompt = :prompt) "
    "ORDER BY CASE WHEN state = :running THEN 0 ELSE 1 END, id DESC LIMIT :limit"
)
END_EXPERIMENT = Statement(
    "UPDATE experiments SET state = :state, ended_at = :ended_at, decision = :decision "
    "WHERE id = :id AND state = :running"
)
EXPERIMENT_LOOKS = Statement("SELECT looks FROM experiments WHERE id = :id")
# Of replicas recording at once, the one that moves the count from `looks` takes the look.
TAKE_LOOK = Statement("UPDATE experiments SET looks = looks + 1 WHERE id = :id AND looks = :looks AND state = :running")
SILENCE_ARM = Statement("UPDATE arms SET weight = 0 WHERE experiment_id = :experiment_id AND version = :version")
SCORED_PER_VERSION = Statement(
    "SELECT version, COUNT(score) FROM outcomes WHERE experiment_id = :experiment_id GROUP BY version"
)
ARM_OUTCOMES = Statement(
    "SELECT score, error, feedback FROM outcomes WHERE experiment_id = :experiment_id AND version = :version"
)

# Outcomes: one per completion id, however often it is delivered.
RECORD_OUTCOME = Statement(
    "INSERT INTO outcomes(completion_id, experiment_id, prompt, version, model, category, score, latency_ms, "
    "tokens, error, at, weakest, mode) VALUES (:completion_id, :experiment_id, :prompt, :version, :model, "
    ":category, :score, :latency_ms, :tokens, :error, :at, :weakest, :mode) "
    "ON CONFLICT(completion_id) DO NOTHING"
)
HAS_OUTCOME = Statement("SELECT 1 FROM outcomes WHERE completion_id = :completion_id")
JUDGED = Statement(
    "UPDATE outcomes SET judge_score = :score, judge_reason = :reason WHERE completion_id = :completion_id"
)
FEEDBACK = Statement(
    "UPDATE outcomes SET feedback = :thumbs_up, comment = :comment WHERE completion_id = :completion_id"
)
WEAKEST_OF_WORST = Statement(
    "SELECT weakest FROM outcomes WHERE prompt = :prompt AND (:category = '' OR category = :category) "
    "AND score IS NOT NULL ORDER BY score ASC, id DESC LIMIT :limit"
)
JUDGE_AND_SCORER = Statement(
    "SELECT score, judge_score FROM outcomes WHERE score IS NOT NULL AND judge_score IS NOT NULL "
    "ORDER BY id DESC LIMIT :limit"
)

# Quality by group: the expression that names a turn's key in each group.
_GROUP_KEYS = {"model": "model", "prompt": "prompt || ':v' || version", "category": "category", "mode": "mode"}
GROUPS = tuple(_GROUP_KEYS)
GROUP_KEYS = {
    group: Statement(f"SELECT DISTINCT {key} FROM outcomes WHERE score IS NOT NULL")
    for group, key in _GROUP_KEYS.items()
}
GROUP_SCORES = {
    group: Statement(
        f"SELECT score FROM outcomes WHERE score IS NOT NULL AND {key} = :key ORDER BY id DESC LIMIT :limit"
    )
    for group, key in _GROUP_KEYS.items()
}
FIRST_SCORED = Statement("SELECT MIN(at) FROM outcomes WHERE score IS NOT NULL")
GROUP_SCORES_SINCE = {
    group: Statement(f"SELECT {key}, at, score FROM outcomes WHERE score IS NOT NULL AND at >= :since ORDER BY id")
    for group, key in _GROUP_KEYS.items()
}

# Alerts.
ALERT_SINCE = Statement("SELECT 1 FROM alerts WHERE key = :key AND at > :since LIMIT 1")
RAISE_ALERT = Statement(
    "INSERT INTO alerts(key, severity, message, value, at) VALUES (:key, :severity, :message, :value, :at)"
)
ALERT_DELIVERED = Statement("UPDATE alerts SET delivered = :delivered WHERE key = :key AND at = :at")
ALERTS = Statement("SELECT key, severity, message, value, at, delivered FROM alerts ORDER BY id DESC LIMIT :limit")

# Improvement cycles and what they learned.
LEARNING = Statement("SELECT pattern, wins, losses FROM learning")
CREDIT = Statement(
    "INSERT INTO learning(pattern, wins, losses) VALUES (:pattern, :wins, :losses) "
    "ON CONFLICT(pattern) DO UPDATE SET wins = learning.wins + excluded.wins, "
    "losses = learning.losses + excluded.losses"
)
START_CYCLE = Statement(
    "INSERT INTO cycles(prompt, category, reason, experiment_id, started_at, ended_at, outcome) "
    "VALUES (:prompt, :category, :reason, :experiment_id, :started_at, :ended_at, :outcome) RETURNING id"
)
ADD_CYCLE_VARIANT = Statement(
    "INSERT INTO cycle_variants(cycle_id, version, pattern) VALUES (:cycle_id, :version, :pattern)"
)
OPEN_CYCLES = Statement("SELECT id, experiment_id FROM cycles WHERE ended_at IS NULL AND experiment_id IS NOT NULL")
CYCLE_VARIANTS = Statement("SELECT version, pattern FROM cycle_variants WHERE cycle_id = :cycle_id ORDER BY version")
END_CYCLE = Statement("UPDATE cycles SET ended_at = :ended_at, outcome = :outcome WHERE id = :id")
LAST_CYCLE_END = Statement("SELECT MAX(ended_at) FROM cycles WHERE prompt = :prompt")
CYCLE = Statement(
    "SELECT id, prompt, category, reason, experiment_id, started_at, ended_at, outcome FROM cycles WHERE id = :id"
)
RECENT_CYCLES = Statement("SELECT id FROM cycles ORDER BY id DESC LIMIT :limit")

# Evaluation runs.
SAVE_EVALUATION = Statement(
    "INSERT INTO evaluations(id, started_at, state, summary, report) "
    "VALUES (:id, :started_at, :state, :summary, :report) "
    "ON CONFLICT(id) DO UPDATE SET state = excluded.state, summary = excluded.summary, report = excluded.report"
)
EVALUATION = Statement("SELECT summary, report FROM evaluations WHERE id = :id")
RECENT_EVALUATIONS = Statement("SELECT summary FROM evaluations ORDER BY started_at DESC, id DESC LIMIT :limit")
