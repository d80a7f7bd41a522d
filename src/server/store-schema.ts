/** The job database's file in the data folder (with its `-wal` and `-shm` companions while it is open). */
export const DB_FILE = "diffuse.sqlite";

/** The version of the schema below; bump with a migration when it changes. */
export const SCHEMA_VERSION = 1;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  model TEXT NOT NULL,
  type TEXT NOT NULL,
  state TEXT NOT NULL,
  params TEXT NOT NULL,
  source TEXT NOT NULL,
  init_image BLOB,
  mask BLOB,
  interruptions INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  error TEXT,
  steps_done INTEGER,
  steps_total INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, model, seq);
CREATE TABLE IF NOT EXISTS images (
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES jobs (id),
  idx INTEGER NOT NULL,
  seed INTEGER NOT NULL, -- two's complement of the unsigned 64-bit seed (store.ts, IMAGE_COLUMNS)
  infotext TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_by_job ON images (job_id, idx);
CREATE TABLE IF NOT EXISTS options (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`;
