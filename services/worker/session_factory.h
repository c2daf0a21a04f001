// File: session_factory.h
//
// Which protocol driver runs a session. The load models (shard.cc) never
// name a protocol; they ask here.

#pragma once

#include <memory>

#include "llmload/v1/run.pb.h"
#include "services/worker/shard.h"

namespace llmload::worker {

// True when this worker has a driver for the protocol.
bool SessionSupported(v1::Protocol protocol);

}  // namespace llmload::worker
