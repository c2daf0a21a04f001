// File: ids.h
//
// Random identifiers: session and client ids (uuid4) and channel epochs.
// Backed by OpenSSL's RAND_bytes, which is thread-safe, so ids stay unique
// across processes and restarts (--seed only fixes the generated text).

#pragma once

#include <cstddef>
#include <string>

namespace llmload::emulator {

// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lower-case hex (RFC 4122 v4).
std::string NewUuid4();
// Four characters from [A-Za-z0-9], like Centrifugo's stream epochs.
std::string NewEpoch();

}  // namespace llmload::emulator

namespace llmload::emulator {

// `length` characters from [A-Za-z0-9] for request and message ids (not
// secret: a per-thread generator seeded once from the system CSPRNG).
std::string NewShortId(size_t length);

}  // namespace llmload::emulator
