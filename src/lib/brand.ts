/**
 * Branded primitive types, so that a node id can't be passed where a resource id is expected.
 * Brands exist only at compile time; at run time they are plain strings and numbers.
 */
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type NodeId = Brand<string, 'NodeId'>;
export type ResourceId = Brand<string, 'ResourceId'>;
export type Term = Brand<number, 'Term'>;
export type LogIndex = Brand<number, 'LogIndex'>;

export const NodeId = (s: string): NodeId => s as NodeId;
export const ResourceId = (s: string): ResourceId => s as ResourceId;
export const Term = (n: number): Term => n as Term;
export const LogIndex = (n: number): LogIndex => n as LogIndex;
