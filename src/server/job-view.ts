import type { JobStatus } from "./api-types.js";
import type { JobQueue } from "./job-queue.js";
import type { ImageRecord, JobRecord, JobStore } from "./store.js";

/**
 * Turns stored jobs, plus what only the worker knows (live progress, an outcome still waiting for room in the
 * database), into API status objects.
 */
export class JobViews {
  constructor(
    private readonly store: JobStore,
    private readonly queue: JobQueue,
  ) {}

  one(job: JobRecord): JobStatus {
    return this.render(job, this.store.imagesOf([job.id]).get(job.id) ?? [], this.queue.position(job));
  }

  /** Positions from one ordered list of the queue instead of a count per job. */
  many(jobs: readonly JobRecord[]): JobStatus[] {
    const images = this.store.imagesOf(jobs.map((j) => j.id));
    const places = new Map(this.queue.queuedIds().map((id, i) => [id, i]));
    return jobs.map((j) =>
      this.render(j, images.get(j.id) ?? [], j.state === "queued" ? (places.get(j.id) ?? null) : null),
    );
  }

  private render(stored: JobRecord, images: ImageRecord[], position: number | null): JobStatus {
    const job = this.queue.withUnsavedOutcome(stored);
    return {
      id: job.id,
      state: job.state,
      position,
      progress: this.progress(job),
      created_at: job.createdAt,
      started_at: job.startedAt,
      finished_at: job.finishedAt,
      model: job.model,
      params: job.params,
      images: images.map((i) => this.queue.imageRef(i)),
      error: job.error,
    };
  }

  private progress(job: JobRecord): JobStatus["progress"] {
    if (job.state === "running") {
      const live = this.queue.live(job.id);
      if (live?.progress) return { step: live.progress.step, steps: live.progress.steps };
      return null;
    }
    return job.stepsDone === null || job.stepsTotal === null ? null : { step: job.stepsDone, steps: job.stepsTotal };
  }
}
