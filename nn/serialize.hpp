// nn/: saving and loading tensors in the safetensors format (8-byte little-endian header length,
// a JSON header {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}, then the raw
// little-endian data), readable by other tools. Files are written atomically (temporary file, fsync,
// rename). Loading validates everything before reading data: a truncated or corrupted file, or a
// header that lies about sizes or offsets, throws xg::Error (SerializationError) without allocating
// more than the file holds or reading out of bounds.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "../engine/error.hpp"
#include "module.hpp"
#include "optim.hpp"

namespace xg::nn {

/// A malformed, truncated or inconsistent file, or an I/O failure.
class SerializationError : public Error {
public:
    using Error::Error;
};

/// Tensors (in file order) and string metadata of a safetensors file.
struct SafetensorsFile {
    StateDict tensors;
    std::map<std::string, std::string> metadata;
};

/// Writes tensors (F32, F64 or I64) and metadata to path atomically. Names must be unique.
void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata = {});
/// Reads and validates a safetensors file (dtypes F32, F64, I64).
SafetensorsFile load_safetensors(const std::string& path);
/// Parses a safetensors image held in memory (the same checks as load_safetensors).
SafetensorsFile parse_safetensors(const std::string& bytes);

/// Saves a module's state dict (parameters and buffers) with optional metadata.
void save_model(const std::string& path, const Module& model, const std::map<std::string, std::string>& metadata = {});
/// Loads a file written by save_model into model (strict: the names and shapes must match); returns the metadata.
std::map<std::string, std::string> load_model(const std::string& path, Module& model);

/// Saves model ("model.<name>") and optimizer state ("optimizer.<name>") with metadata in one file.
void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer,
                     const std::map<std::string, std::string>& metadata = {});
/// Restores a checkpoint into model and optimizer; returns the user metadata.
std::map<std::string, std::string> load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer);

}  // namespace xg::nn
