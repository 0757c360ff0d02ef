export * from './assert.ts';
export * from './bounded_queue.ts';
export * from './brand.ts';
export * from './errors.ts';
export * from './ports.ts';
export * from './prng.ts';
