/** The job database's file in the data folder (with its `-wal` and `-shm` companions while it is open). */
export const DB_FILE = "diffuse.sqlite";

/** The version of SCHEMA; bump it with an entry in MIGRATIONS when the schema changes. */
export const SCHEMA_VERSION = 2;

/** Version 1: jobs (with their init image and mask), images, options. */
const SCHEMA_V1 = `
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

/**
 * Version 2: the control images of a job's ControlNet units, one row per unit in unit order (a job has any number,
 * so they cannot be columns of jobs as its init image and mask are).
 */
const CONTROL_IMAGES = `
CREATE TABLE IF NOT EXISTS control_images (
  job_id TEXT NOT NULL REFERENCES jobs (id),
  idx INTEGER NOT NULL,
  image BLOB NOT NULL,
  PRIMARY KEY (job_id, idx)
);
`;

export const SCHEMA = SCHEMA_V1 + CONTROL_IMAGES;

/**
 * How a database of an earlier version is brought up to this one: by the version it has, the schema it must have
 * (checked before anything is changed) and what upgrades it to the next version.
 */
export const MIGRATIONS: ReadonlyMap<number, { schema: string; upgrade: string }> = new Map([
  [1, { schema: SCHEMA_V1, upgrade: CONTROL_IMAGES }],
]);
