import type { Command } from 'commander';

/** Registers this area's commands on the `halo` program. (Filled in by its owner.) */
export function registerAdminCommands(_program: Command): void {}
