// Adds a tmpfs mount to every container, as `podman run --tmpfs` would.
//
// A mounts plugin written in JavaScript against the contract in `wit/`
// (world `mounts-policy`), built into a component with jco.
//
// Settings: `path`, the absolute destination (default /tmp); `size`, the
// tmpfs size limit in bytes with an optional k, m or g suffix (default
// 64m); `mode`, the octal mode of its root (default 1777). A container
// that already has a mount at `path` keeps it.

import { log } from "specgate:policy/host@0.1.0";

const NAME = "tmpfs";
const VERSION = "0.1.0";

// Set by `configure`, read by `adjust`: one instance serves one run.
let config = { path: "/tmp", size: "64m", mode: "1777" };

// The settings `configure` received, read the way the Rust SDK reads them:
// a key given twice or left unread is an error.
class Settings {
  constructor(settings) {
    this.values = new Map();
    this.errors = [];
    for (const [key, value] of settings) {
      if (this.values.has(key)) {
        this.errors.push(`setting \`${key}\` given twice`);
      }
      this.values.set(key, value);
    }
  }

  // A string setting, trimmed.
  string(key) {
    if (!this.values.has(key)) {
      return undefined;
    }
    const value = this.values.get(key).trim();
    this.values.delete(key);
    return value;
  }

  error(message) {
    this.errors.push(message);
  }

  // Throws the errors, and one per key nobody read: jco returns a thrown
  // string as the `err` of `configure`'s result.
  finish() {
    const errors = [...this.errors];
    for (const key of this.values.keys()) {
      errors.push(`unknown setting \`${key}\``);
    }
    if (errors.length > 0) {
      throw errors.join("; ");
    }
  }
}

export const plugin = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: "adds a tmpfs mount at a configured path",
    };
  },

  configure(settings) {
    const parsed = new Settings(settings);
    const path = parsed.string("path") ?? "/tmp";
    const size = parsed.string("size") ?? "64m";
    const mode = parsed.string("mode") ?? "1777";
    if (!path.startsWith("/")) {
      parsed.error(`setting \`path\`: \`${path}\` is not an absolute path`);
    }
    if (!/^[0-9]+[kmg]?$/i.test(size)) {
      parsed.error(`setting \`size\`: \`${size}\` is not a size (e.g. 64m)`);
    }
    if (!/^[0-7]{3,4}$/.test(mode)) {
      parsed.error(`setting \`mode\`: \`${mode}\` is not an octal mode`);
    }
    parsed.finish();
    config = { path, size: size.toLowerCase(), mode };
    log("debug", `tmpfs at ${path}, size ${config.size}, mode ${mode}`);
  },
};

export const mounts = {
  adjust(container) {
    if (container.mounts.some((m) => m.destination === config.path)) {
      log("info", `${config.path} is already mounted; leaving it`);
      return [];
    }
    log("info", `adding a tmpfs at ${config.path}`);
    return [
      {
        tag: "add",
        val: {
          destination: config.path,
          kind: "tmpfs",
          source: "tmpfs",
          options: ["nosuid", "nodev", `size=${config.size}`, `mode=${config.mode}`],
        },
      },
    ];
  },
};
