import { CliError, type Command } from "./common.js";

const notYet: Command["run"] = async () => {
  throw new CliError("not built yet");
};

export const dumpCommand: Command = {
  summary: "print the desired routing state",
  usage: "usage: obiente-router dump\n",
  run: notYet,
};
export const diffCommand: Command = {
  summary: "compare a state file with the database",
  usage: "usage: obiente-router diff -f <file>\n",
  run: notYet,
};
export const applyCommand: Command = {
  summary: "make the database match a state file",
  usage: "usage: obiente-router apply -f <file>\n",
  run: notYet,
};
