import { CliError, type Command } from "./common.js";

export const exportCommand: Command = {
  summary: "write the dynamic config as files for Traefik's file provider",
  usage: "usage: obiente-router export --dir <folder>\n",
  async run() {
    throw new CliError("export: not built yet");
  },
};
