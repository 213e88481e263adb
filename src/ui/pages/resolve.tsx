/** @jsxImportSource hono/jsx */
import type { ConsoleApp } from "../console.js";

/** STUB (issue 17): filled in by the page's owner. */
export function registerResolvePage(_app: ConsoleApp): void {}
