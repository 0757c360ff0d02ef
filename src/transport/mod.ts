/**
 * halo's transport: sealed datagrams over up to 8 links per peer (packet.ts is the wire format,
 * udp_transport.ts the sockets), the authenticated stream channel for large transfers
 * (stream.ts), and the cluster key file.
 */
export * from './key_file.ts';
export * from './links.ts';
export * from './packet.ts';
export * from './replay_window.ts';
export {
  MAX_PENDING_HANDSHAKES,
  STREAM_HANDSHAKE_TIMEOUT_MS,
  StreamChannel,
  type StreamOptions,
  StreamServer,
} from './stream.ts';
export * from './stream_frames.ts';
export * from './udp_transport.ts';
