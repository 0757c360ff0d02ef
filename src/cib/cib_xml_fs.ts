/**
 * Reading a CIB XML file: the file side of `CibXmlChunkParser` (cib_xml.ts stays pure).
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { CIB_FILE_CHUNK_BYTES, CibXmlChunkParser, parseCibXml } from './cib_xml.ts';
import type { CibParseResult } from './parse_result.ts';

/**
 * Reads and parses the CIB XML file at `path` (named `file` in diagnostics) with the same result
 * as `parseCibXml` on its text, but piece by piece (see `CibXmlChunkParser`). Invalid UTF-8
 * reads as U+FFFD, as `readFileSync(path, 'utf8')` does. Throws what node:fs throws when the
 * file cannot be read.
 */
export function parseCibXmlFile(
  path: string,
  file = path,
  chunkBytes = CIB_FILE_CHUNK_BYTES,
): CibParseResult {
  const parser = new CibXmlChunkParser(file);
  const fd = openSync(path, 'r');
  try {
    let buffer = Buffer.allocUnsafe(chunkBytes);
    // Bytes at the start of `buffer` after the last `>` of the previous read.
    let kept = 0;
    for (;;) {
      if (kept === buffer.length) {
        // No `>` in a whole buffer (a very long text or value): read on into a larger one.
        const larger = Buffer.allocUnsafe(buffer.length * 2);
        buffer.copy(larger, 0, 0, kept);
        buffer = larger;
      }
      const got = readSync(fd, buffer, kept, buffer.length - kept, null);
      const end = kept + got;
      // Each piece ends just after a `>` byte, which is never part of a longer UTF-8 sequence:
      // decoded alone it gives the characters (U+FFFD for invalid bytes) the whole file would,
      // and the scanner mostly gets whole constructs, never a character cut in two.
      const cut = got === 0 ? end : buffer.lastIndexOf(0x3e, end - 1) + 1;
      let more = true;
      if (cut > 0) {
        more = parser.write(buffer.toString('utf8', 0, cut));
        buffer.copy(buffer, 0, cut, end);
        kept = end - cut;
      } else kept = end;
      if (got === 0 || !more) break;
    }
  } finally {
    closeSync(fd);
  }
  return parser.end() ?? parseCibXml(readFileSync(path, 'utf8'), file);
}
