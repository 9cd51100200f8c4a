// Only the header matters: SwiftPM needs a source file to make this a C module.
#include "FuzzDriver.h"
