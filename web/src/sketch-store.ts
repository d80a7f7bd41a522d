/**
 * Keeps the sketch across reloads, as the server keeps the history: the canvas layers as PNG blobs in IndexedDB
 * (localStorage holds only a few MB of strings, too little for a photo at 1024 px). A sketch larger than MAX_BYTES is
 * not kept, and the one kept before it is dropped, so a reload never brings back an older drawing than the last one.
 */
export interface SavedSketch {
  picture: Blob;
  strokes: Blob;
  mask: Blob;
}

const DATABASE = "diffuse";
const STORE = "sketch";
const KEY = "current";
/** Three layers of a 1024 px photo as PNG come to about 3-6 MB; this leaves room without filling the disk quota. */
export const MAX_BYTES = 16 * 1024 * 1024;

export class SketchStore {
  private db: Promise<IDBDatabase> | null = null;

  /** The saved sketch, or null when none was saved (or this browser keeps no IndexedDB, e.g. a private window). */
  async load(): Promise<SavedSketch | null> {
    const value = await this.request("readonly", (store) => store.get(KEY));
    return isSaved(value) ? value : null;
  }

  /** Saves the sketch, or drops the saved one when this one is over MAX_BYTES; false then. */
  async save(sketch: SavedSketch): Promise<boolean> {
    const size = sketch.picture.size + sketch.strokes.size + sketch.mask.size;
    if (size > MAX_BYTES) {
      await this.request("readwrite", (store) => store.delete(KEY));
      return false;
    }
    await this.request("readwrite", (store) => store.put(sketch, KEY));
    return true;
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = indexedDB.open(DATABASE, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error("IndexedDB could not be opened"));
    });
    return this.db;
  }

  private async request(mode: IDBTransactionMode, make: (store: IDBObjectStore) => IDBRequest): Promise<unknown> {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const req = make(db.transaction(STORE, mode).objectStore(STORE));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error("IndexedDB request failed"));
    });
  }
}

function isSaved(value: unknown): value is SavedSketch {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.picture instanceof Blob && v.strokes instanceof Blob && v.mask instanceof Blob;
}
