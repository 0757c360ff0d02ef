/**
 * A simulated disk for `FileStore`: what has been fsynced survives a crash; what has not is
 * lost, or — for appends — partly written (a torn write: a random prefix of the unsynced bytes,
 * sometimes with garbage in its last bytes). Renames and new names survive only after the
 * directory is fsynced. It never loses or damages fsynced data: that is not a fault a
 * correct cluster can survive, so the simulator does not inject it.
 */
import type { StoreFs } from '../src/consensus/file_store.ts';
import type { Rng } from '../src/lib/ports.ts';

/** Thrown from a disk operation to model the process dying in the middle of persisting. */
export class SimCrash extends Error {
  override name = 'SimCrash';
}

class SimFile {
  current: Uint8Array = new Uint8Array(0);
  durable: Uint8Array = new Uint8Array(0);
}

export class SimFs implements StoreFs {
  private names = new Map<string, SimFile>();
  private durableNames = new Map<string, SimFile>();
  /** When ≥ 0: the number of mutating operations left before a `SimCrash`. */
  opsUntilCrash = -1;
  /** Counters for the verbose log. */
  tornWrites = 0;

  private mutate(): void {
    if (this.opsUntilCrash < 0) return;
    if (this.opsUntilCrash === 0) {
      this.opsUntilCrash = -1;
      throw new SimCrash('simulated crash during a disk write');
    }
    this.opsUntilCrash--;
  }

  readFile(name: string): Uint8Array | null {
    const f = this.names.get(name);
    return f ? f.current.slice() : null;
  }

  /** The file called `name`, created empty when missing. */
  private fileFor(name: string): SimFile {
    let f = this.names.get(name);
    if (!f) {
      f = new SimFile();
      this.names.set(name, f);
    }
    return f;
  }

  appendFile(name: string, data: Uint8Array): void {
    this.mutate();
    const f = this.fileFor(name);
    const next = new Uint8Array(f.current.length + data.length);
    next.set(f.current);
    next.set(data, f.current.length);
    f.current = next;
  }

  writeFile(name: string, data: Uint8Array): void {
    this.mutate();
    const f = this.fileFor(name);
    f.current = data.slice();
  }

  fsync(name: string): void {
    this.mutate();
    const f = this.names.get(name);
    if (f) f.durable = f.current.slice();
  }

  rename(from: string, to: string): void {
    this.mutate();
    const f = this.names.get(from);
    if (!f) throw new Error(`rename: ${from} does not exist`);
    this.names.set(to, f);
    this.names.delete(from);
  }

  fsyncDir(): void {
    this.mutate();
    this.durableNames = new Map(this.names);
  }

  truncate(name: string, length: number): void {
    this.mutate();
    const f = this.names.get(name);
    if (f) f.current = f.current.slice(0, length);
  }

  unlink(name: string): void {
    this.mutate();
    this.names.delete(name);
  }

  /** The machine loses power: keep what is durable, tear what was being appended. */
  crash(rng: Rng): void {
    this.opsUntilCrash = -1;
    const files = new Set([...this.names.values(), ...this.durableNames.values()]);
    for (const f of files) {
      let kept = f.durable;
      const extends_ = f.current.length > f.durable.length && startsWith(f.current, f.durable);
      if (extends_ && rng.int(2) === 0) {
        const extra = f.current.length - f.durable.length;
        const n = rng.int(extra + 1);
        kept = f.current.slice(0, f.durable.length + n);
        if (n > 0 && rng.int(3) === 0) kept[kept.length - 1] = (kept[kept.length - 1]! ^ 0x5a) & 0xff;
        if (n > 0) this.tornWrites++;
      }
      f.current = kept.slice();
      f.durable = kept.slice();
    }
    this.names = new Map(this.durableNames);
  }
}

function startsWith(a: Uint8Array, prefix: Uint8Array): boolean {
  if (prefix.length > a.length) return false;
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
  return true;
}
