export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
}

/** JSON lines on stdout. Callers never pass secrets; `err` fields are reduced to name and message. */
export function createLogger(
  level: Level = "info",
  write: (line: string) => void = (l) => process.stdout.write(l),
): Logger {
  const min = ORDER[level];
  const log = (lvl: Level, message: string, fields?: Fields) => {
    if (ORDER[lvl] < min) {
      return;
    }
    const entry: Fields = { time: new Date().toISOString(), level: lvl, msg: message };
    for (const [k, v] of Object.entries(fields ?? {})) {
      entry[k] = v instanceof Error ? { name: v.name, message: v.message } : v;
    }
    write(`${JSON.stringify(entry)}\n`);
  };
  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
