/**
 * The checkpoint registry `<runDir>/train/<name>/checkpoints.json`, read by the validate stage.
 *
 * A `checkpoint-N` folder counts once it is complete: transformers writes `trainer_state.json` after
 * the adapter, optimizer and RNG state, so its presence (with `adapter_config.json`) marks a finished
 * save. Checkpoints removed by `save_total_limit` rotation leave the registry. Written atomically.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { exists, readJson, writeJson } from "../pipeline/util.ts";

export interface CheckpointEntry {
  name: string;
  step: number;
  epoch: number | null;
  path: string;
  adapter: boolean;
  registered_at: string;
}

export interface CheckpointRegistryFile {
  train_name: string;
  base_model: string;
  checkpoints: CheckpointEntry[];
}

export const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

/** Complete `checkpoint-N` folders in an output dir, by step. */
export async function listCheckpoints(outputDir: string): Promise<{ step: number; path: string; epoch: number | null; adapter: boolean }[]> {
  let names: string[];
  try {
    names = await fsp.readdir(outputDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  const out = [];
  for (const n of names) {
    const m = CHECKPOINT_RE.exec(n);
    if (!m) continue;
    const dir = path.join(outputDir, n);
    let state: { epoch?: unknown; global_step?: unknown } | undefined;
    try {
      state = await readJson(path.join(dir, "trainer_state.json"));
    } catch {
      continue; // being written
    }
    if (!state) continue;
    const adapter = await exists(path.join(dir, "adapter_config.json"));
    out.push({ step: Number(m[1]), path: dir, epoch: typeof state.epoch === "number" ? state.epoch : null, adapter });
  }
  return out.sort((a, b) => a.step - b.step);
}

export class CheckpointRegistry {
  private entries = new Map<number, CheckpointEntry>();
  private loaded = false;

  constructor(
    readonly file: string,
    readonly trainName: string,
    readonly baseModel: string,
    private readonly now: () => Date = () => new Date(),
    /** Register only LoRA checkpoints (adapter_config.json); false also registers full checkpoints (UTRL full fine-tuning). */
    private readonly adaptersOnly = true,
  ) {}

  private async load(): Promise<void> {
    if (this.loaded) return;
    this.loaded = true;
    const prev = await readJson<CheckpointRegistryFile>(this.file);
    for (const c of prev?.checkpoints ?? []) this.entries.set(c.step, c);
  }

  /** Bring the registry in line with the folder; returns the checkpoints registered by this call. */
  async sync(outputDir: string): Promise<{ added: CheckpointEntry[]; removed: CheckpointEntry[] }> {
    await this.load();
    const found = (await listCheckpoints(outputDir)).filter((c) => c.adapter || !this.adaptersOnly);
    const added: CheckpointEntry[] = [];
    const removed: CheckpointEntry[] = [];
    const seen = new Set(found.map((c) => c.step));
    for (const [step, e] of this.entries) {
      if (!seen.has(step)) {
        this.entries.delete(step);
        removed.push(e);
      }
    }
    for (const c of found) {
      if (this.entries.has(c.step)) continue;
      const e: CheckpointEntry = {
        name: `${this.trainName}-step${c.step}`,
        step: c.step,
        epoch: c.epoch,
        path: path.resolve(c.path),
        adapter: c.adapter,
        registered_at: this.now().toISOString(),
      };
      this.entries.set(c.step, e);
      added.push(e);
    }
    if (added.length || removed.length || !(await exists(this.file))) await this.write();
    return { added, removed };
  }

  list(): CheckpointEntry[] {
    return [...this.entries.values()].sort((a, b) => a.step - b.step);
  }

  private async write(): Promise<void> {
    const body: CheckpointRegistryFile = { train_name: this.trainName, base_model: this.baseModel, checkpoints: this.list() };
    await writeJson(this.file, body);
  }
}
