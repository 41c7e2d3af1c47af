/* main.c — placeholder until the daemon is wired (replaced in this session). */
#include <stdio.h>
int main(void) { return 0; }
