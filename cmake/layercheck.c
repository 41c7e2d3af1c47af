/* layercheck.c — an empty program. CMake links one layer's library into it
 * whole, with only the layers below (CMakeLists.txt): a call from that layer
 * up to a higher one leaves an undefined symbol and the link fails. */
int main(void) { return 0; }
