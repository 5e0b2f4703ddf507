// Standalone Gradle build for the `sail` Android library module (ports/android/sail). An app can
// instead include the module from its own settings: include(":sail"); project(":sail").projectDir = file(".../ports/android/sail")
// Not built in sail's environment (no Android SDK there): see README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "sail-android"
include(":sail")
