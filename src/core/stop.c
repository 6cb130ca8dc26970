#include "stop.h"

volatile sig_atomic_t aprof_stop_requested = 0;
volatile sig_atomic_t aprof_stop_signal = 0;
