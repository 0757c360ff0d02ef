/** Administrative edits of the CIB (`halo configure|node|resource`): pure, shared by CLI and daemon. */
export { type CommandPlan, configurationVersion, toCibCommands } from './cib_commands.ts';
export { CLUSTER_OPTIONS, checkOption } from './cluster_options.ts';
export { COMMAND_LINE_FILE } from './configure_edits.ts';
export { formatPreview, previewTransition, type TransitionPreview } from './dry_run.ts';
export { type AdminEdit, applyEdit, type EditError, type EditErrorCode, type EditResult } from './edits.ts';
export { knownNodeNames, memberNodeDeletion, nodeAttributeValue } from './node_edits.ts';
export { type ActiveInstance, type FailCount, failCounts, locate } from './resource_edits.ts';
