// What every hook program does around its work: log level, one error line
// with the context chain, exit status; and reading its admin-set environment.
#pragma once

#include "container_state.hpp"

#include <functional>
#include <string>
#include <vector>

namespace hook {

// Runs body with hookName (as Sarus names its hooks: "MPI hook") in every
// log line; a sarus::Error (or any exception) becomes one ERROR line
// "<context>: ...: <message>" and exit status 1.
int runHookMain(const std::string& hookName, const std::function<void()>& body);

// The variable's value, "" when unset.
std::string environmentVariable(const char* name);

// An absolute path from the variable; throws when unset/empty (if required)
// or relative. Returns "" for an unset optional variable.
std::string absolutePathFromEnvironment(const char* name, bool required);

// "a:b::c" -> {"a", "b", "c"}: empty items are dropped.
std::vector<std::string> splitColonList(const std::string& list);

// Mounting needs privilege over the container's mount namespace. crun runs
// createContainer hooks inside the container, already as its user when it
// made a single-id user namespace: then nothing can be mounted.
void requireMountPrivileges(const ContainerState& state, const std::string& hookName);

}  // namespace hook
