#pragma once
// The subset of PKZIP that .npz files use: stored or deflated members, optional ZIP64 fields,
// one disk, no encryption. The reader trusts only the central directory (as numpy's zipfile
// does) and checks every offset and size against the buffer before touching it, because .npz
// input is untrusted and fuzzed. Declared sizes are never allocated up front: output grows as
// inflate actually produces it, and stops the moment it exceeds what the directory declared.
//
// io/zip_reader.hpp (ZipReader, ZipPayload), io/zip_writer.hpp (ZipWriter) and what both share,
// io/zip_format.hpp (ZipMember).
#include "volfeat/io/zip_format.hpp"
#include "volfeat/io/zip_reader.hpp"
#include "volfeat/io/zip_writer.hpp"
